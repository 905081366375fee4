package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/money"
)

// Decode reads the request body as one JSON object into dst. Unknown fields are ignored, as
// clients may send more than a version of the API knows; anything else malformed is a 400.
func Decode(c echo.Context, dst any) error {
	dec := json.NewDecoder(c.Request().Body)
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		var maxErr *echo.HTTPError
		switch {
		case errors.As(err, &maxErr):
			return err
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return apperr.Validation(map[string]string{typeErr.Field: "must be a " + typeName(typeErr.Type.Kind().String())})
		case errors.Is(err, io.EOF):
			return apperr.New(apperr.Invalid, "request body must be a JSON object")
		case strings.Contains(err.Error(), "http: request body too large"):
			return apperr.New(apperr.PayloadTooLarge, "request body is larger than "+MaxBodyBytes+"B")
		default:
			return apperr.New(apperr.Invalid, "request body must be a JSON object")
		}
	}
	// Only whitespace may follow the object (More alone lets a stray "}" through).
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.New(apperr.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

func typeName(kind string) string {
	switch kind {
	case "slice", "array":
		return "list"
	case "map", "struct":
		return "object"
	case "int", "int64", "float64":
		return "number"
	default:
		return kind
	}
}

// Fields collects validation failures by field name.
type Fields map[string]string

// Err returns nil when no field failed, else the 400 listing them.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return apperr.Validation(f)
}

// Required checks that a string field is present and not blank.
func (f Fields) Required(name, value string) bool {
	if strings.TrimSpace(value) == "" {
		f[name] = "is required"
		return false
	}
	// PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
	if strings.ContainsRune(value, 0) || !utf8.ValidString(value) {
		f[name] = "must be valid UTF-8 text without NUL characters"
		return false
	}
	return true
}

// UUID parses a required UUID field.
func (f Fields) UUID(name, value string) uuid.UUID {
	if !f.Required(name, value) {
		return uuid.Nil
	}
	id, err := uuid.Parse(value)
	if err != nil || len(value) != 36 {
		f[name] = "must be a UUID"
		return uuid.Nil
	}
	return id
}

// Email checks a required e-mail address: a bare address, no display name.
func (f Fields) Email(name, value string) {
	if !f.Required(name, value) {
		return
	}
	addr, err := mail.ParseAddress(value)
	if err != nil || addr.Address != value || len(value) > 254 {
		f[name] = "must be an e-mail address"
	}
}

// MaxLen checks the length of a string field in characters.
func (f Fields) MaxLen(name, value string, n int) {
	if len([]rune(value)) > n {
		f[name] = "is too long"
	}
}

// PathUUID parses a UUID path parameter; a malformed one is a 400.
func PathUUID(c echo.Context, name string) (uuid.UUID, error) {
	f := Fields{}
	id := f.UUID(name, c.Param(name))
	return id, f.Err()
}

// Amount parses a required positive amount given as a JSON number with at most 2 decimals.
// The raw JSON text is parsed, never a float, so no value is rounded on the way in.
func (f Fields) Amount(name string, raw json.RawMessage) money.Amount {
	if len(raw) == 0 || string(raw) == "null" {
		f[name] = "is required"
		return 0
	}
	a, err := money.ParsePositive(string(raw))
	if err != nil {
		f[name] = err.Error()
	}
	return a
}
