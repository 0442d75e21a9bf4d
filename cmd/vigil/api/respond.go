package api

import (
	"encoding/json"
	"errors"
	"net/http"
)

// handlerFunc is an endpoint that returns its error instead of writing
// it, so every endpoint's errors reach the client in the one shape that
// writeError gives them.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP implements http.Handler.
func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		var he *httpError
		status := http.StatusInternalServerError
		if errors.As(err, &he) {
			status = he.status
		}
		writeError(w, status, err)
	}
}

// httpError is an error with the HTTP status it should be answered with.
// Errors without one are answered 500.
type httpError struct {
	status int
	err    error
	// note, when set, goes out as the answer's "status" beside "error".
	note string
}

// Error implements error with the wrapped error's text: the status is
// not part of the message.
func (e *httpError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error, for errors.Is.
func (e *httpError) Unwrap() error { return e.err }

// badRequest marks err as the client's fault (400).
func badRequest(err error) error { return &httpError{status: http.StatusBadRequest, err: err} }

// errorBody is the JSON of every error answer; the dashboard shows Error.
type errorBody struct {
	Error  string `json:"error"`
	Status string `json:"status,omitempty"`
}

// writeError answers with {"error": "..."} and status. It is the only
// place that writes an error answer.
func writeError(w http.ResponseWriter, status int, err error) {
	body := errorBody{Error: err.Error()}
	var he *httpError
	if errors.As(err, &he) {
		body.Status = he.note
	}
	writeJSON(w, status, body)
}

// writeJSON answers with v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ok answers 200 with v; handlers end with "return ok(w, v)".
func ok(w http.ResponseWriter, v any) error {
	writeJSON(w, http.StatusOK, v)
	return nil
}
