package store

import (
	"context"
	"errors"
	"testing"
)

// TestSelfCheckBuild: another FerretDB or SQLite build than the one the
// direct path was written for turns the direct path off.
func TestSelfCheckBuild(t *testing.T) {
	saved := runningFerretBuild
	t.Cleanup(func() { runningFerretBuild = saved })
	for _, tc := range []struct {
		name  string
		build ferretBuild
		ok    bool
	}{
		{"written for", ferretBuild{FerretDB: ferretVersion, SQLite: ferretSQLiteVersion}, true},
		{"unknown FerretDB (test binary)", ferretBuild{SQLite: ferretSQLiteVersion}, true},
		{"another FerretDB", ferretBuild{FerretDB: "v1.24.3", SQLite: ferretSQLiteVersion}, false},
		{"another SQLite", ferretBuild{FerretDB: ferretVersion, SQLite: "3.47.0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runningFerretBuild = func(context.Context) (ferretBuild, error) { return tc.build, nil }
			err := selfCheck(context.Background(), t.TempDir())
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, errFerretMismatch) {
				t.Errorf("selfCheck = %v, want ok=%v", err, tc.ok)
			}
			s := openDir(t, t.TempDir())
			if got := DirectOf(s) != nil; got != tc.ok {
				t.Errorf("direct access: got %v, want %v", got, tc.ok)
			}
		})
	}
}

// TestSelfCheckSQLiteVersion: the SQLite this binary runs is the one the
// direct path was written for (a module upgrade fails here first).
func TestSelfCheckSQLiteVersion(t *testing.T) {
	b, err := runningFerretBuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.SQLite != ferretSQLiteVersion {
		t.Errorf("SQLite %s, the direct path was written for %s", b.SQLite, ferretSQLiteVersion)
	}
}
