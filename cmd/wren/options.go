package main

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// option is one field of an Options struct (broker.Options, lookup.Options)
// that the command line or the config file can set. The list is built by
// reflection over the struct tags so that the Options types stay the only
// place where options are declared.
type option struct {
	flagName  string        // "" for fields settable only from the config file
	configKey string        // the field's `cfg` tag, else flagName with "-" → "_"
	usage     string        // the `help` tag
	value     reflect.Value // the addressable field inside the Options being filled
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	flagValueType = reflect.TypeFor[flag.Value]()
)

// bindOptions lists the settable fields of *opts, which must point to a
// struct. A field is settable when it has a `flag` or a `cfg` tag. It fails
// on a field whose type it cannot parse, which is a programming error in the
// options struct, not a user error.
func bindOptions(opts any) ([]option, error) {
	return bindSomeOptions(opts, "", nil)
}

// bindSomeOptions is bindOptions for a struct embedded in another command's
// flags, as the combined mode embeds lookup.Options: only the fields whose
// flag name is in include are bound (all when include is nil), and prefix
// goes before each flag name and, with "-" turned to "_", before each config
// key. Naming a field that does not exist is an error, so that renaming an
// option cannot silently drop its flag.
func bindSomeOptions(opts any, prefix string, include []string) ([]option, error) {
	v := reflect.ValueOf(opts)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("bindOptions: want a pointer to a struct, got %T", opts)
	}
	v = v.Elem()
	wanted := make(map[string]bool, len(include))
	for _, name := range include {
		wanted[name] = false
	}
	configPrefix := strings.ReplaceAll(prefix, "-", "_")
	var list []option
	for i := range v.NumField() {
		field := v.Type().Field(i)
		flagName := field.Tag.Get("flag")
		configKey := field.Tag.Get("cfg")
		if flagName == "" && configKey == "" {
			continue
		}
		if include != nil {
			if _, ok := wanted[flagName]; !ok || flagName == "" {
				continue
			}
			wanted[flagName] = true
		}
		if configKey == "" {
			configKey = strings.ReplaceAll(flagName, "-", "_")
		}
		if !supported(field.Type) {
			return nil, fmt.Errorf("bindOptions: field %s has unsupported type %s", field.Name, field.Type)
		}
		if flagName != "" {
			flagName = prefix + flagName
		}
		list = append(list, option{
			flagName:  flagName,
			configKey: configPrefix + configKey,
			usage:     field.Tag.Get("help"),
			value:     v.Field(i),
		})
	}
	for _, name := range include {
		if !wanted[name] {
			return nil, fmt.Errorf("bindOptions: %T has no field with flag %q", opts, name)
		}
	}
	return list, nil
}

func supported(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(flagValueType) || t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Int64, reflect.Bool:
		return true
	case reflect.Slice:
		k := t.Elem().Kind()
		return k == reflect.String || k == reflect.Float64
	}
	return false
}

// optionValue is the flag.Value of one option. Lists are repeatable: the
// first Set on the command line replaces the default, later ones append.
type optionValue struct {
	field    reflect.Value
	appended bool // a list flag has been given at least once
}

// external returns the field's own flag.Value, if its type has one.
func (o *optionValue) external() (flag.Value, bool) {
	if !o.field.IsValid() || !o.field.Addr().Type().Implements(flagValueType) {
		return nil, false
	}
	return o.field.Addr().Interface().(flag.Value), true
}

func (o *optionValue) String() string {
	if !o.field.IsValid() {
		// flag.PrintDefaults probes a zero Value; there is nothing to show.
		return ""
	}
	if ext, ok := o.external(); ok {
		return ext.String()
	}
	if o.field.Type() == durationType {
		return time.Duration(o.field.Int()).String()
	}
	switch o.field.Kind() {
	case reflect.String:
		return o.field.String()
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(o.field.Int(), 10)
	case reflect.Bool:
		return strconv.FormatBool(o.field.Bool())
	case reflect.Slice:
		parts := make([]string, o.field.Len())
		for i := range parts {
			elem := o.field.Index(i)
			if elem.Kind() == reflect.Float64 {
				parts[i] = strconv.FormatFloat(elem.Float(), 'g', -1, 64)
			} else {
				parts[i] = elem.String()
			}
		}
		return strings.Join(parts, ",")
	}
	return ""
}

// Set parses one command-line value. Its errors describe what was wanted;
// the caller adds the flag name and the value.
func (o *optionValue) Set(s string) error {
	if ext, ok := o.external(); ok {
		return ext.Set(s)
	}
	if o.field.Type() == durationType {
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		o.field.SetInt(int64(d))
		return nil
	}
	switch o.field.Kind() {
	case reflect.String:
		o.field.SetString(s)
		return nil
	case reflect.Int, reflect.Int64:
		return setInt(o.field, s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		o.field.SetBool(b)
		return nil
	case reflect.Slice:
		// nsqd splits list flags on commas too (its option resolver joins
		// and re-splits them), so "a:4160,b:4160" is two addresses.
		items, err := parseList(o.field.Type().Elem().Kind(), strings.Split(s, ","))
		if err != nil {
			return err
		}
		if !o.appended {
			o.field.SetLen(0)
			o.appended = true
		}
		o.field.Set(reflect.AppendSlice(o.field, items.Convert(o.field.Type())))
		return nil
	}
	return fmt.Errorf("unsupported option type %s", o.field.Type())
}

// IsBoolFlag lets bool options, and flag.Values that ask for it such as
// --tls-required, be given bare.
func (o *optionValue) IsBoolFlag() bool {
	if !o.field.IsValid() {
		return false
	}
	if ext, ok := o.external(); ok {
		b, ok := ext.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	return o.field.Kind() == reflect.Bool
}

// typeName is the word shown after the flag in the usage text.
func (o *optionValue) typeName() string {
	if _, ok := o.external(); ok {
		if o.IsBoolFlag() {
			return "[=value]"
		}
		return "value"
	}
	if o.IsBoolFlag() {
		return ""
	}
	if o.field.Type() == durationType {
		return "duration"
	}
	switch o.field.Kind() {
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.Slice:
		if o.field.Type().Elem().Kind() == reflect.Float64 {
			return "float,..."
		}
	}
	return "string"
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 250ms, 60s or 1h")
	}
	return d, nil
}

func setInt(field reflect.Value, s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return errors.New("out of range")
		}
		return errors.New("want an integer")
	}
	if field.OverflowInt(n) {
		return errors.New("out of range")
	}
	field.SetInt(n)
	return nil
}

// parseList parses the items of a []string or []float64 option.
func parseList(kind reflect.Kind, items []string) (reflect.Value, error) {
	if kind == reflect.String {
		out := make([]string, 0, len(items))
		for _, item := range items {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return reflect.ValueOf(out), nil
	}
	out := make([]float64, 0, len(items))
	for _, item := range items {
		f, err := strconv.ParseFloat(strings.TrimSpace(item), 64)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("want numbers separated by commas, got %q", item)
		}
		out = append(out, f)
	}
	return reflect.ValueOf(out), nil
}
