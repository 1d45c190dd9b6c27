package protocol

import "fmt"

// Error codes sent on the wire, exactly as nsqd spells them.
const (
	CodeInvalid        = "E_INVALID"
	CodeBadProtocol    = "E_BAD_PROTOCOL"
	CodeBadBody        = "E_BAD_BODY"
	CodeBadTopic       = "E_BAD_TOPIC"
	CodeBadChannel     = "E_BAD_CHANNEL"
	CodeBadMessage     = "E_BAD_MESSAGE"
	CodePubFailed      = "E_PUB_FAILED"
	CodeMPubFailed     = "E_MPUB_FAILED"
	CodeDPubFailed     = "E_DPUB_FAILED"
	CodeSubFailed      = "E_SUB_FAILED"
	CodeFinFailed      = "E_FIN_FAILED"
	CodeReqFailed      = "E_REQ_FAILED"
	CodeTouchFailed    = "E_TOUCH_FAILED"
	CodeIdentifyFailed = "E_IDENTIFY_FAILED"
	CodeAuthDisabled   = "E_AUTH_DISABLED"
	CodeAuthFailed     = "E_AUTH_FAILED"
	CodeAuthFirst      = "E_AUTH_FIRST"
	CodeAuthError      = "E_AUTH_ERROR"
	CodeUnauthorized   = "E_UNAUTHORIZED"
)

// Error is a protocol error: the code and description a client sees, whether
// the connection must close after it is sent, and the underlying cause, which
// is logged but never sent.
type Error struct {
	Code  string
	Desc  string
	Fatal bool
	Cause error
}

// NewError returns an error with the given code and description. Whether it
// is fatal follows from the code: in NSQ every error closes the connection
// except E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED.
func NewError(code, desc string) *Error {
	return &Error{Code: code, Desc: desc, Fatal: IsFatalCode(code)}
}

// Errorf is NewError with a formatted description.
func Errorf(code, format string, args ...any) *Error {
	return NewError(code, fmt.Sprintf(format, args...))
}

// Wrap returns a copy of e that records cause for the logs.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// IsFatalCode reports whether an error with this code closes the connection.
func IsFatalCode(code string) bool {
	switch code {
	case CodeFinFailed, CodeReqFailed, CodeTouchFailed:
		return false
	}
	return true
}

// Wire is the text sent in the error frame: "E_CODE description".
func (e *Error) Wire() string {
	if e.Desc == "" {
		return e.Code
	}
	return e.Code + " " + e.Desc
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Wire() + ": " + e.Cause.Error()
	}
	return e.Wire()
}

func (e *Error) Unwrap() error { return e.Cause }
