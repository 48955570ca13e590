package testsite_test

import (
	"fmt"
	"net/http"

	"crawlcache/testsite"
)

func ExampleSite() {
	site := testsite.New(testsite.Options{Pages: 20, Seed: 1})
	srv := site.Start()
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/products/1")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/products/1", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	again.Body.Close()

	c := site.Counts()
	fmt.Println(resp.StatusCode, again.StatusCode, c.Requests("/products/1"), c.Bodies, c.NotModified, len(site.URLs(srv.URL)))
	// Output: 200 304 2 1 1 20
}
