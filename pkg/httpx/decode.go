package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/apperr"
	"github.com/order-system/order-system/pkg/money"
)

// Decode reads the request body as one JSON object into dst. Unknown fields are ignored, as
// clients may send more than a version of the API knows; anything else malformed, including
// a key given twice (see CheckObject), is a 400.
func Decode(c *echo.Context, dst any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		if echo.StatusCode(err) != 0 {
			return err // the body limit's 413
		}
		if strings.Contains(err.Error(), "http: request body too large") {
			return apperr.New(apperr.PayloadTooLarge, "request body is larger than %dKB", MaxBodyBytes>>10)
		}
		return apperr.Wrap(err, apperr.Invalid, "request body cannot be read")
	}
	if err := CheckObject(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return apperr.Validation(map[string]string{typeErr.Field: "must be a " + typeName(typeErr.Type.Kind().String())})
		}
		return errNotObject
	}
	return nil
}

var errNotObject = apperr.New(apperr.Invalid, "request body must be a JSON object")

// CheckObject accepts body only if it is a single JSON object (surrounded by nothing but
// whitespace) in which no object, at any depth, names a key twice, also not in another letter
// case. encoding/json matches keys to fields regardless of case and keeps the last one, so
// {"price":1,"PRICE":5} would be read as 5 while anything else reading the text (a log, a
// proxy, the idempotency fingerprint) may take 1: such a body is refused rather than guessed
// at. The idempotency middleware runs the same check before it takes a key, so a body the
// handler would refuse never holds one.
func CheckObject(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errNotObject
	}
	if err := checkObject(dec); err != nil {
		return err
	}
	// Only whitespace may follow the object (More alone lets a stray "}" through).
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.New(apperr.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

// checkObject walks the members of an object whose opening brace was just read, up to and
// including its closing brace.
func checkObject(dec *json.Decoder) error {
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errNotObject
		}
		key, ok := tok.(string)
		if !ok {
			return errNotObject
		}
		folded := foldKey(key)
		if first, dup := seen[folded]; dup {
			msg := "is given twice"
			if first != key {
				msg = fmt.Sprintf("is given twice (as %q and %q; keys do not depend on letter case)", first, key)
			}
			return apperr.Validation(map[string]string{key: msg})
		}
		seen[folded] = key
		if err := checkValue(dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return errNotObject
	}
	return nil
}

// checkValue walks the next value, descending into objects and arrays.
func checkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return errNotObject
	}
	switch tok {
	case json.Delim('{'):
		return checkObject(dec)
	case json.Delim('['):
		for dec.More() {
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing bracket
			return errNotObject
		}
	}
	return nil
}

// foldKey maps the keys encoding/json takes for the same field to one string, the way it
// compares them: ASCII letters by case, other runes by Unicode simple folding (so the Kelvin
// sign matches "k").
func foldKey(key string) string {
	var b strings.Builder
	for _, r := range key {
		for {
			next := unicode.SimpleFold(r)
			if next <= r {
				r = next
				break
			}
			r = next
		}
		b.WriteRune(r)
	}
	return b.String()
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

// OptionalTime parses an optional RFC 3339 timestamp field; the zero time when it is absent.
func (f Fields) OptionalTime(name, value string) time.Time {
	if value == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		f[name] = "must be an RFC 3339 date-time"
		return time.Time{}
	}
	return t
}

// PathUUID parses a UUID path parameter; a malformed one is a 400.
func PathUUID(c *echo.Context, name string) (uuid.UUID, error) {
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
