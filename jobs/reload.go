package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"crawlcache/configs"
)

// ReloadReport says what Scheduler.Reload changed.
type ReloadReport struct {
	// Added, Changed and Removed name the scheduled jobs that appeared,
	// whose file changed, and that are no longer scheduled (a run of a
	// removed job that is in progress goes on to its end).
	Added, Changed, Removed []string
	// Kept names the jobs whose file is now invalid: their previous
	// definition stays scheduled. Errors are the files' errors
	// (*configs.Error values: file, line, key).
	Kept   []string
	Errors []error
}

// Reload replaces the scheduled jobs with loaded, the result of
// configs.LoadDir (its jobs and its error), without stopping the runs in
// progress. A job whose file has an error in loadErr (an invalid file, a
// duplicate name) keeps its previous definition; a new file with an error
// adds nothing. A job whose file is unchanged keeps its state; a changed
// schedule is computed again from now; a run in progress goes on with the
// definition it started with, and the next occurrence uses the new one.
func (s *Scheduler) Reload(loaded []*configs.Job, loadErr error, now time.Time) ReloadReport {
	var rep ReloadReport
	bad, dirErr := badFiles(loadErr, &rep)
	if dirErr {
		return s.keepAll(rep) // change nothing: a directory that cannot be read is not an empty one
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	current := map[string]*entry{}
	for _, e := range s.entries {
		if !e.removed {
			current[e.job.Name] = e
		}
	}
	want := map[string]*configs.Job{}
	for _, j := range loaded {
		if j.Schedule != "" && !bad[j.Source] {
			want[j.Name] = j
		}
	}
	for name, e := range current { // a broken file keeps its jobs
		if bad[e.job.Source] {
			if _, ok := want[name]; !ok {
				want[name] = e.job
				rep.Kept = append(rep.Kept, name)
			}
		}
	}

	var entries []*entry
	for name, j := range want {
		e, ok := current[name]
		if !ok {
			if e = s.reentry(name); e == nil {
				e = &entry{}
			}
			sc, err := ParseSchedule(j.Schedule)
			if err != nil {
				rep.Errors = append(rep.Errors, err)
				continue
			}
			e.job, e.sched, e.next, e.removed = j, sc, sc.Next(now), false
			rep.Added = append(rep.Added, name)
			if s.o.Metrics != nil {
				s.o.Metrics.Register(name)
			}
		} else if j != e.job && j.Hash == e.job.Hash {
			e.job = j // the same file content (perhaps moved)
		} else if j != e.job {
			if j.Schedule != e.job.Schedule {
				sc, err := ParseSchedule(j.Schedule)
				if err != nil {
					rep.Errors = append(rep.Errors, err)
					entries = append(entries, e)
					continue
				}
				e.sched, e.next = sc, sc.Next(now)
			}
			e.job = j
			rep.Changed = append(rep.Changed, name)
		}
		if s.o.Metrics != nil {
			s.o.Metrics.NextRun(name, e.next)
		}
		entries = append(entries, e)
	}
	for name, e := range current {
		if _, ok := want[name]; ok {
			continue
		}
		rep.Removed = append(rep.Removed, name)
		if e.running { // kept until its run ends, never started again
			e.removed = true
			entries = append(entries, e)
		} else if s.o.Metrics != nil {
			s.o.Metrics.Forget(name)
		}
	}
	sort.Slice(entries, func(i, k int) bool { return entries[i].job.Name < entries[k].job.Name })
	s.entries = entries
	for _, l := range [][]string{rep.Added, rep.Changed, rep.Removed, rep.Kept} {
		slices.Sort(l)
	}
	s.wakeLocked()
	return rep
}

// badFiles lists the files loadErr has errors for, and records the errors
// in rep. dirErr reports an error of the directory itself (gone,
// unreadable) rather than of its files.
func badFiles(loadErr error, rep *ReloadReport) (bad map[string]bool, dirErr bool) {
	bad = map[string]bool{}
	dirErr = loadErr != nil && len(configs.Errors(loadErr)) == 0
	for _, e := range configs.Errors(loadErr) {
		if ext := filepath.Ext(e.File); ext != ".yaml" && ext != ".yml" {
			dirErr = true
		}
		bad[e.File] = true
		rep.Errors = append(rep.Errors, e)
	}
	if dirErr && len(rep.Errors) == 0 {
		rep.Errors = append(rep.Errors, loadErr)
	}
	return bad, dirErr
}

// keepAll returns rep with every scheduled job kept as it is.
func (s *Scheduler) keepAll(rep ReloadReport) ReloadReport {
	s.mu.Lock()
	for _, e := range s.entries {
		if !e.removed {
			rep.Kept = append(rep.Kept, e.job.Name)
		}
	}
	s.mu.Unlock()
	slices.Sort(rep.Kept)
	return rep
}

// reentry returns the entry of a removed job whose run is still in
// progress, taken out of the list, so that a job added back while it runs
// is not started twice; nil if there is none. s.mu is held.
func (s *Scheduler) reentry(name string) *entry {
	for i, e := range s.entries {
		if e.removed && e.job.Name == name {
			s.entries = slices.Delete(s.entries, i, i+1)
			return e
		}
	}
	return nil
}

// wakeLocked makes Loop compute its next tick again. s.mu is held.
func (s *Scheduler) wakeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// fileStamp is what WatchDir compares to notice a changed file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// stamps returns the stamp of every *.yaml and *.yml file in dir.
func stamps(dir string) (map[string]fileStamp, error) {
	list, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]fileStamp{}
	for _, d := range list {
		ext := filepath.Ext(d.Name())
		if d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, d.Name())) // follows symlinks (Kubernetes ConfigMaps)
		if err != nil {
			continue
		}
		out[d.Name()] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

// DirWatch notices changed job files in a directory. It polls rather than
// using inotify: a directory listing every few seconds costs nothing, and
// polling sees the changes inotify watches miss (files replaced by
// rename, Kubernetes ConfigMap symlink swaps, network filesystems).
type DirWatch struct {
	dir  string
	last map[string]fileStamp
}

// NewDirWatch takes a first look at the job files in dir (*.yaml, *.yml):
// Run reports changes from this look on.
func NewDirWatch(dir string) *DirWatch {
	last, _ := stamps(dir)
	return &DirWatch{dir: dir, last: last}
}

// Run calls changed each time the job files differ from the last look (a
// file added, removed, or with another modification time or size),
// looking every `every`, until ctx is done. Call it from one goroutine.
func (w *DirWatch) Run(ctx context.Context, every time.Duration, changed func()) {
	dir, last := w.dir, w.last
	defer func() { w.last = last }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := stamps(dir)
		if err != nil && errors.Is(err, os.ErrNotExist) {
			now = nil
		}
		if !sameStamps(last, now) {
			last = now
			changed()
		}
	}
}

func sameStamps(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.mod.Equal(v.mod) || w.size != v.size {
			return false
		}
	}
	return true
}
