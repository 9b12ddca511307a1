package simulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/simulator"
)

// AnswerDelay: the write is processed at once and its answer held; a
// client that gives up meanwhile never hears, yet Toll has the
// declaration. Reads are not held.
func TestAnswerDelay(t *testing.T) {
	srv := start(t, simulator.Config{})
	tok := roadToken(t, srv)
	house := road(srv, "house-consignment")

	t.Run("answer after processing", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{AnswerDelay: 20 * time.Millisecond})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		id := submit(t, http.MethodPost, house, tok, houseBody("HWB-HELD-1", "MAWB-1"))
		ds := srv.Stats().Declarations()
		if len(ds) == 0 || ds[len(ds)-1].RequestID != id {
			t.Fatalf("answered requestId %s, recorded %+v", id, ds)
		}
		// A read is not held: it answers even with a long delay set.
		srv.SetFaults(simulator.Faults{AnswerDelay: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, roadQuery(srv, "house-consignment/validation-status/"+id), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("validation status with AnswerDelay set: %v", err)
		}
		resp.Body.Close()
	})

	t.Run("client gone while held", func(t *testing.T) {
		srv.SetFaults(simulator.Faults{AnswerDelay: time.Hour})
		t.Cleanup(func() { srv.SetFaults(simulator.Faults{}) })
		before := len(srv.Stats().Declarations())
		body, err := json.Marshal(houseBody("HWB-HELD-2", "MAWB-1"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, house, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		deadline := time.Now().Add(5 * time.Second)
		for len(srv.Stats().Declarations()) == before {
			if time.Now().After(deadline) {
				t.Fatal("the held write was not processed")
			}
			select {
			case err := <-done:
				t.Fatalf("answered while held (err %v)", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("the client got an answer after giving up")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the held request did not end when its client gave up")
		}
		if got := srv.Stats().Submissions("HWB-HELD-2"); got != 1 {
			t.Errorf("Toll holds %d submissions of HWB-HELD-2, want 1", got)
		}
	})
}
