package database_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/order-system/order-system/pkg/database"
)

func TestNamedNumbersEachNameOnce(t *testing.T) {
	t.Parallel()
	q := database.Named(`SELECT @id, @name, @id::text, '@not_a_param', "@col", now() + @ttl::interval, @_x1 @`)
	want := `SELECT $1, $2, $1::text, '@not_a_param', "@col", now() + $3::interval, $4 @`
	if q.SQL() != want {
		t.Fatalf("SQL = %s\nwant  %s", q.SQL(), want)
	}
	args, err := q.Args(database.Params{"ttl": "1 second", "id": 7}.With(database.Params{"name": "n", "_x1": true}))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{7, "n", "1 second", true}, args); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
	if _, err := q.Args(database.Params{"id": 7, "name": "n", "ttl": "1 second"}); err == nil {
		t.Error("Args without @_x1: no error; the statement would run with NULL for it")
	}
}
