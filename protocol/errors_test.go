package protocol_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"wren/protocol"
)

func TestIsFatalCode(t *testing.T) {
	codes := []string{
		protocol.CodeInvalid, protocol.CodeBadProtocol, protocol.CodeBadBody,
		protocol.CodeBadTopic, protocol.CodeBadChannel, protocol.CodeBadMessage,
		protocol.CodePubFailed, protocol.CodeMPubFailed, protocol.CodeDPubFailed,
		protocol.CodeSubFailed, protocol.CodeFinFailed, protocol.CodeReqFailed,
		protocol.CodeTouchFailed, protocol.CodeIdentifyFailed, protocol.CodeAuthDisabled,
		protocol.CodeAuthFailed, protocol.CodeAuthFirst, protocol.CodeAuthError,
		protocol.CodeUnauthorized, "E_SOMETHING_NEW",
	}
	nonFatal := map[string]bool{"E_FIN_FAILED": true, "E_REQ_FAILED": true, "E_TOUCH_FAILED": true}
	for _, code := range codes {
		t.Run(code, func(t *testing.T) {
			want := !nonFatal[code]
			if got := protocol.IsFatalCode(code); got != want {
				t.Errorf("IsFatalCode(%s) = %v, want %v", code, got, want)
			}
			if got := protocol.NewError(code, "x").Fatal; got != want {
				t.Errorf("NewError(%s).Fatal = %v, want %v", code, got, want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	tests := []struct {
		name      string
		err       *protocol.Error
		wantWire  string
		wantError string
		wantCause error
	}{
		{
			name:      "code and description",
			err:       protocol.NewError(protocol.CodeInvalid, "invalid command FOO"),
			wantWire:  "E_INVALID invalid command FOO",
			wantError: "E_INVALID invalid command FOO",
		},
		{
			name:      "code only",
			err:       protocol.NewError(protocol.CodeAuthFirst, ""),
			wantWire:  "E_AUTH_FIRST",
			wantError: "E_AUTH_FIRST",
		},
		{
			name:      "formatted",
			err:       protocol.Errorf(protocol.CodeBadBody, "PUB invalid message body size %d", -1),
			wantWire:  "E_BAD_BODY PUB invalid message body size -1",
			wantError: "E_BAD_BODY PUB invalid message body size -1",
		},
		{
			name:      "cause is logged, never sent",
			err:       protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to read body").Wrap(cause),
			wantWire:  "E_BAD_BODY IDENTIFY failed to read body",
			wantError: "E_BAD_BODY IDENTIFY failed to read body: unexpected EOF",
			wantCause: cause,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Wire(); got != tc.wantWire {
				t.Errorf("Wire() = %q, want %q", got, tc.wantWire)
			}
			if got := tc.err.Error(); got != tc.wantError {
				t.Errorf("Error() = %q, want %q", got, tc.wantError)
			}
			if got := tc.err.Unwrap(); got != tc.wantCause {
				t.Errorf("Unwrap() = %v, want %v", got, tc.wantCause)
			}
		})
	}
}

func TestErrorWrapKeepsOriginal(t *testing.T) {
	base := protocol.NewError(protocol.CodeFinFailed, "FIN failed")
	wrapped := base.Wrap(io.EOF)
	if base.Cause != nil {
		t.Errorf("Wrap modified its receiver: Cause = %v", base.Cause)
	}
	if wrapped.Code != base.Code || wrapped.Desc != base.Desc || wrapped.Fatal != base.Fatal {
		t.Errorf("Wrap changed the wire error: %+v from %+v", wrapped, base)
	}
	if !errors.Is(wrapped, io.EOF) {
		t.Error("errors.Is does not reach the cause")
	}
	var pe *protocol.Error
	if !errors.As(fmt.Errorf("handler: %w", wrapped), &pe) || pe.Code != protocol.CodeFinFailed {
		t.Errorf("errors.As through a wrapping error = %v", pe)
	}
}
