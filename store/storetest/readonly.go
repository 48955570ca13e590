package storetest

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ReadOnlyDir returns a read-only view of dir for the rest of the test: as
// an ordinary user, dir itself with the write permission removed (restored
// at the end); as root, whom permissions do not stop, a read-only bind
// mount of dir (unmounted at the end). It skips the test when neither is
// possible.
func ReadOnlyDir(tb testing.TB, dir string) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		var paths []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				paths = append(paths, p)
			}
			return nil
		})
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil {
				_ = os.Chmod(p, fi.Mode().Perm()&^0o222)
			}
		}
		tb.Cleanup(func() {
			for _, p := range paths {
				if fi, err := os.Stat(p); err == nil {
					_ = os.Chmod(p, fi.Mode().Perm()|0o200)
				}
			}
		})
		return dir
	}
	mnt := filepath.Join(tb.TempDir(), "ro")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", "-o", "ro", dir, mnt).CombinedOutput(); err != nil {
		tb.Skipf("cannot make a read-only view of %s as root (mount --bind -o ro: %v: %s)", dir, err, out)
	}
	tb.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	if f, err := os.Create(filepath.Join(mnt, ".probe")); err == nil {
		f.Close()
		tb.Skipf("the read-only bind mount of %s is writable", dir)
	}
	return mnt
}
