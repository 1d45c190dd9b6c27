package protocol_test

import (
	"testing"

	"wren/protocol"
)

func TestParseBase10(t *testing.T) {
	tests := []struct {
		input   string
		want    int64
		wantErr bool
	}{
		{input: "", want: 0},
		{input: "0", want: 0},
		{input: "7", want: 7},
		{input: "007", want: 7},
		{input: "2500", want: 2500},
		{input: "9223372036854775807", want: 1<<63 - 1},
		{input: "9223372036854775808", wantErr: true},
		{input: "9223372036854775810", wantErr: true},
		{input: "18446744073709551617", wantErr: true},
		{input: "99999999999999999999999", wantErr: true},
		{input: "-1", wantErr: true},
		{input: "+1", wantErr: true},
		{input: " 1", wantErr: true},
		{input: "1 ", wantErr: true},
		{input: "1a", wantErr: true},
		{input: "0x10", wantErr: true},
		{input: "1.5", wantErr: true},
		{input: "١", wantErr: true}, // Arabic-Indic digit one
	}
	for _, tc := range tests {
		t.Run(tc.input, func(t *testing.T) {
			got, err := protocol.ParseBase10([]byte(tc.input))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseBase10(%q) = %d, want an error", tc.input, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBase10(%q) = %d, %v; want %d", tc.input, got, err, tc.want)
			}
		})
	}
}
