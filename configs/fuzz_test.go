package configs

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that a failure is
// always a list of *Error carrying the file name, and that a success is a
// usable job. The seed corpus in testdata/fuzz/FuzzParse (the shipped
// configs, the fixtures and one file per mistake kind) runs with go test.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"example.yaml", "books.yaml", "testdata/full.yaml", "testdata/minimal.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := parseTest("fuzz.yaml", string(data))
		if err != nil {
			if job != nil {
				t.Errorf("job returned with an error")
			}
			errs := Errors(err)
			if len(errs) == 0 {
				t.Fatalf("error without an *Error: %v", err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Errorf("error without the file name: %q", e.Error())
				}
				if e.Msg == "" {
					t.Errorf("empty message in %+v", e)
				}
			}
			return
		}
		if job.Name == "" || len(job.Seeds) == 0 || job.Source != "fuzz.yaml" || len(job.Hash) != 64 {
			t.Errorf("incomplete job: %+v", job)
		}
		if len(job.AllowedDomains) == 0 || job.Rate.PerHost <= 0 || job.Rate.Burst < 1 || job.Rate.Parallelism < 1 || job.Timeout <= 0 {
			t.Errorf("job outside its invariants: %+v", job)
		}
		if len(job.Include) != len(job.IncludePatterns) || len(job.Exclude) != len(job.ExcludePatterns) {
			t.Errorf("regexps and patterns differ in length")
		}
	})
}
