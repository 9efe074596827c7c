package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/assistants-go/assistants/server/store"
)

// The server keeps its objects in a store.Store (Options.Store). This file
// holds what every handler shares to talk to it: the mapping of store errors
// to API errors (in one place), the encoding of API objects into the
// store's values, and list parameters.
//
// Objects are kept in the store as the API's JSON (store values' Data);
// they are decoded again on every read, so nothing handed out is shared.

// storeErr maps an error of the store to the API's answer. kind and id name
// the object asked for (for the 404). Errors that are not the store's
// sentinels are returned wrapped: they become a 500 (see writeError).
func storeErr(err error, kind, id string) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae // an error of ours returned through an update function
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(kind, id)
	case errors.Is(err, store.ErrTooLarge):
		return errBadRequest("file", "Invalid 'file': the file is larger than the limit.")
	case errors.Is(err, store.ErrClosed):
		return errShuttingDown()
	case errors.Is(err, store.ErrClaimLost):
		// A create fenced on the request's Idempotency-Key claim
		// (claimFence), whose lease lapsed and another request took the
		// key: that one answers, and made (or makes) the object.
		return errIdemRetry()
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Type: "invalid_request_error", Message: fmt.Sprintf("The %s '%s' already exists.", kind, truncateForMessage(id))}
	}
	return fmt.Errorf("store: %s %s: %w", kind, truncateForMessage(id), err)
}

// encodeData returns v's JSON for a store value's Data.
func encodeData(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode stored object: %w", err)
	}
	return b, nil
}

// decodeData decodes a store value's Data.
func decodeData[T any](b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("decode stored object: %w", err)
	}
	return v, nil
}

// decodeAll decodes the Data of each item.
func decodeAll[V, T any](items []V, data func(V) []byte) ([]T, error) {
	out := make([]T, 0, len(items))
	for _, it := range items {
		v, err := decodeData[T](data(it))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// storeList turns the API's list parameters into the store's.
func storeList(p listParams) store.ListParams {
	return store.ListParams{Limit: p.Limit, Desc: p.Desc, After: p.After, Before: p.Before}
}

// firstLast returns the ids of the first and last items of a page.
func firstLast[T any](items []T, id func(T) string) (first, last string) {
	if len(items) == 0 {
		return "", ""
	}
	return id(items[0]), id(items[len(items)-1])
}
