package configs

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.errors from the current output")

// TestGoldenErrors loads every testdata/invalid/*.yaml and compares the
// whole error report with the .errors file next to it.
func TestGoldenErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := parseTest(f, string(data))
			if perr == nil {
				t.Fatalf("%s loaded without errors", f)
			}
			got := perr.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".errors"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./configs -run TestGoldenErrors -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors of %s:\n%s\nwant (%s):\n%s", f, got, golden, want)
			}
		})
	}
}
