package main

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// readConfigFile decodes a TOML file in nsqd's format: one top-level key per
// option, named as applyConfig describes.
func readConfigFile(path string) (map[string]any, error) {
	var values map[string]any
	if _, err := toml.DecodeFile(path, &values); err != nil {
		return nil, err
	}
	return values, nil
}

// applyConfig sets the options named in values, skipping those whose flag is
// in fromCommandLine, so a flag wins over the file and the file over the
// default. A key is an option's `cfg` tag, else its flag name with "-"
// turned to "_". Values may be written as in nsqd's files:
//
//   - durations as strings ("60s"), or as integers counting milliseconds,
//     which is how nsqd reads an integer duration;
//   - integers as TOML integers or decimal strings; bools as bools or strings;
//   - lists as TOML arrays, or as one comma-separated string;
//   - tls_required as a bool, "true", "false" or "tcp-https";
//     tls_min_version as a string such as "tls1.2".
//
// Unknown keys are an error: nsqd ignores them, but a misspelt key silently
// running with a default is worse than refusing to start.
func applyConfig(options []option, values map[string]any, fromCommandLine map[string]bool) error {
	byKey := make(map[string]option, len(options))
	for _, opt := range options {
		byKey[opt.configKey] = opt
	}
	keys := make([]string, 0, len(values))
	var unknown []string
	for key := range values {
		if _, ok := byKey[key]; !ok {
			unknown = append(unknown, strconv.Quote(key))
		}
		keys = append(keys, key)
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		noun := "key"
		if len(unknown) > 1 {
			noun = "keys"
		}
		return fmt.Errorf("unknown %s %s", noun, strings.Join(unknown, ", "))
	}
	slices.Sort(keys)
	for _, key := range keys {
		opt := byKey[key]
		if opt.flagName != "" && fromCommandLine[opt.flagName] {
			continue
		}
		if err := setFromConfig(opt.value, values[key]); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// setFromConfig stores one decoded TOML value in field.
func setFromConfig(field reflect.Value, raw any) error {
	value := &optionValue{field: field}
	if ext, ok := value.external(); ok {
		switch raw := raw.(type) {
		case string:
			return ext.Set(raw)
		case bool:
			return ext.Set(strconv.FormatBool(raw))
		}
		return wantGot("a string", raw)
	}
	if field.Type() == durationType {
		switch raw := raw.(type) {
		case string:
			d, err := parseDuration(raw)
			if err != nil {
				return err
			}
			field.SetInt(int64(d))
			return nil
		case int64:
			field.SetInt(int64(time.Duration(raw) * time.Millisecond))
			return nil
		}
		return wantGot(`a duration string such as "60s" or an integer of milliseconds`, raw)
	}
	switch field.Kind() {
	case reflect.String:
		if s, ok := raw.(string); ok {
			field.SetString(s)
			return nil
		}
		return wantGot("a string", raw)
	case reflect.Int, reflect.Int64:
		switch raw := raw.(type) {
		case int64:
			if field.OverflowInt(raw) {
				return errors.New("out of range")
			}
			field.SetInt(raw)
			return nil
		case string:
			return setInt(field, raw)
		}
		return wantGot("an integer", raw)
	case reflect.Bool:
		switch raw := raw.(type) {
		case bool:
			field.SetBool(raw)
			return nil
		case string:
			return value.Set(raw)
		}
		return wantGot("true or false", raw)
	case reflect.Slice:
		items, err := configList(field.Type().Elem().Kind(), raw)
		if err != nil {
			return err
		}
		field.Set(items.Convert(field.Type()))
		return nil
	}
	return fmt.Errorf("unsupported option type %s", field.Type())
}

// configList turns a TOML array, or a comma-separated string, into a
// []string or []float64.
func configList(kind reflect.Kind, raw any) (reflect.Value, error) {
	if s, ok := raw.(string); ok {
		return parseList(kind, strings.Split(s, ","))
	}
	array, ok := raw.([]any)
	if !ok {
		return reflect.Value{}, wantGot("an array", raw)
	}
	if kind == reflect.String {
		out := make([]string, 0, len(array))
		for _, item := range array {
			s, ok := item.(string)
			if !ok {
				return reflect.Value{}, wantGot("an array of strings", item)
			}
			out = append(out, s)
		}
		return reflect.ValueOf(out), nil
	}
	out := make([]float64, 0, len(array))
	for _, item := range array {
		switch item := item.(type) {
		case float64:
			out = append(out, item)
		case int64:
			out = append(out, float64(item))
		default:
			return reflect.Value{}, wantGot("an array of numbers", item)
		}
	}
	return reflect.ValueOf(out), nil
}

func wantGot(want string, got any) error {
	return fmt.Errorf("want %s, got %s", want, describeTOML(got))
}

// describeTOML names a decoded TOML value's type for error messages.
func describeTOML(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + strconv.Quote(v)
	case int64:
		return "integer " + strconv.FormatInt(v, 10)
	case float64:
		return "float " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return "bool " + strconv.FormatBool(v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", v)
}
