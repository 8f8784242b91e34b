// demo: a small HTTP service for trying gmon. Some handlers start
// short-lived goroutines, one leaks a goroutine per request.
//
//	demo -addr 127.0.0.1:8080
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"sync"
	"time"
)

var stuck = make(chan struct{})

// fanOut handles /work: it fans out to three workers and waits for them.
func fanOut(w http.ResponseWriter, r *http.Request) {
	var wg sync.WaitGroup
	results := make([]int, 3)
	for i := range results {
		wg.Add(1)
		go compute(&wg, results, i)
	}
	wg.Wait()
	fmt.Fprintln(w, results)
}

func compute(wg *sync.WaitGroup, out []int, i int) {
	defer wg.Done()
	time.Sleep(2 * time.Millisecond)
	out[i] = i * i
}

// leaky handles /leak: it starts a watcher that nobody ever stops.
func leaky(w http.ResponseWriter, r *http.Request) {
	go func() {
		<-stuck // never closed: this goroutine leaks
	}()
	fmt.Fprintln(w, "leaked one goroutine")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	http.HandleFunc("/work", fanOut)
	http.HandleFunc("/leak", leaky)
	log.Printf("demo listening on http://%s (/work, /leak)", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
