package jobs

import "time"

// Active is the run's wall time without the time between its sessions
// (Elapsed minus IdleSeconds): what its rate is measured over.
func (r *Run) Active() time.Duration {
	idle := time.Duration(r.IdleSeconds * float64(time.Second))
	return max(r.Elapsed()-idle, 0)
}

// lastActive is when a worker of the run last reported (its heartbeat),
// or the record's last update when no worker did: a run marked
// interrupted long after its process died stopped at its last heartbeat.
func (r *Run) lastActive() time.Time {
	var t time.Time
	for _, w := range r.Workers {
		if w.Heartbeat.After(t) {
			t = w.Heartbeat
		}
	}
	if t.IsZero() {
		t = r.Updated
	}
	return t
}
