package render

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slowOrigin serves /api/slow: the first request signals arrived and is
// held until its client gives up; later ones answer at once.
type slowOrigin struct {
	arrived chan struct{}
	once    sync.Once
}

func (o *slowOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	first := false
	o.once.Do(func() { first = true; close(o.arrived) })
	if first {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"text":"built"}`)
}

const slowPage = `<!DOCTYPE html><main></main><script>
fetch("/api/slow").then(r => r.json()).then(d => {
  const p = document.createElement("p"); p.id = "done"; p.textContent = d.text;
  document.querySelector("main").appendChild(p);
});
</script>`

// TestBrowserLostMidPage: a browser killed, or stopped so that it no
// longer answers, while a page waits for an API answer is killed and
// restarted, and the page rendered again once, successfully.
func TestBrowserLostMidPage(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"killed", syscall.SIGKILL}, {"hung", syscall.SIGSTOP}} {
		t.Run(tc.name, func(t *testing.T) {
			origin := &slowOrigin{arrived: make(chan struct{})}
			srv := httptest.NewServer(origin)
			t.Cleanup(srv.Close)
			p := newPool(t, Options{Wait: ParseWait("#done"), Timeout: 5 * time.Second})
			p.health = time.Second
			go func() {
				<-origin.arrived
				for _, pid := range p.Processes() {
					syscall.Kill(pid, tc.sig)
				}
			}()
			res, err := p.Render(context.Background(), Page{URL: srv.URL + "/", Status: 200,
				Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte(slowPage)})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			st := p.Stats()
			if !strings.Contains(string(res.HTML), `<p id="done">built</p>`) || res.Attempts != 2 || st.Lost != 1 || st.Launches != 2 {
				t.Errorf("attempts %d, stats %+v, html %q; want the page built on a second attempt in a second browser", res.Attempts, st, res.HTML)
			}
		})
	}
}

// TestHostileScriptTimesOut: a page whose script never ends fails with
// ErrTimeout without a retry (the browser is fine), and the next page
// renders in the same browser.
func TestHostileScriptTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	p := newPool(t, Options{Wait: ParseWait("load"), Timeout: 3 * time.Second})
	p.health = 2 * time.Second
	html := func(body string) Page {
		return Page{URL: srv.URL + "/", Status: 200, Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte(body)}
	}
	_, err := p.Render(context.Background(), html(`<!DOCTYPE html><p>x</p><script>while (true) {}</script>`))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Render of an endless script: err = %v, want ErrTimeout", err)
	}
	res, err := p.Render(context.Background(), html(`<!DOCTYPE html><p id="ok">fine</p>`))
	if err != nil || !strings.Contains(string(res.HTML), "fine") {
		if err == nil {
			err = errors.New(string(res.HTML))
		}
		t.Fatalf("next page: %v", err)
	}
	if st := p.Stats(); st.Retries != 0 || st.Lost != 0 || st.Launches != 1 {
		t.Errorf("stats %+v, want no retry, no lost browser, one browser", st)
	}
}

// TestRequestRules: the job's headers go only to the hosts HeadersFor
// allows, Referer is sent as the browser sends it (the full URL on the
// page's origin, the origin elsewhere), robots.txt refusals and cookies.
func TestRequestRules(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `window.other = 1;`)
	}))
	t.Cleanup(other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/own.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `window.own = 1;`)
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "abc", Path: "/"})
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "["+r.Header.Get("Cookie")+"]") })
	own := httptest.NewServer(mux)
	t.Cleanup(own.Close)
	ownURL, _ := url.Parse(own.URL)
	page := `<!DOCTYPE html><main></main>
<script src="/own.js"></script><script src="/private.js"></script><script src="` + other.URL + `/other.js"></script>
<script>fetch("/set").then(() => fetch("/echo")).then(r => r.text()).then(t => {
  const p = document.createElement("p"); p.id = "cookie"; p.textContent = t; document.querySelector("main").appendChild(p);
});</script>`
	for _, cookies := range []bool{false, true} {
		ct := newCounting()
		p := newPool(t, Options{
			Transport: ct, Wait: ParseWait("#cookie"), Cookies: cookies,
			Headers:    http.Header{"Authorization": {"Bearer s3cret"}},
			HeadersFor: func(u *url.URL) bool { return u.Host == ownURL.Host },
			Allowed:    func(_ context.Context, u *url.URL) bool { return u.Path != "/private.js" },
		})
		res, err := p.Render(context.Background(), Page{URL: own.URL + "/page", Status: 200,
			Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte(page)})
		if err != nil {
			t.Fatalf("Render (cookies %v): %v", cookies, err)
		}
		if got := ct.header("/own.js").Get("Authorization"); got != "Bearer s3cret" {
			t.Errorf("own host's script: Authorization %q, want the job's", got)
		}
		if got := ct.header("/other.js").Get("Authorization"); got != "" {
			t.Errorf("other host's script: Authorization %q, want none", got)
		}
		if got, want := ct.header("/own.js").Get("Referer"), own.URL+"/page"; got != want {
			t.Errorf("own host's script: Referer %q, want %q", got, want)
		}
		if got, want := ct.header("/other.js").Get("Referer"), own.URL+"/"; got != want {
			t.Errorf("other host's script: Referer %q, want the origin %q", got, want)
		}
		if n := ct.count("/private.js"); n != 0 {
			t.Errorf("a script robots.txt disallows was requested %d times", n)
		}
		want := map[bool]string{false: "[]", true: "[session=abc]"}[cookies]
		if !strings.Contains(string(res.HTML), `<p id="cookie">`+want+`</p>`) || (ct.header("/echo").Get("Cookie") != "") != cookies {
			t.Errorf("cookies %v: the page saw %q, want %s", cookies, res.HTML, want)
		}
	}
}
