package server

import (
	"unicode/utf8"

	"github.com/assistants-go/assistants/gen"
)

// Metadata limits, as the API documents them.
const (
	maxMetadataKeys     = 16
	maxMetadataKeyLen   = 64
	maxMetadataValueLen = 512
)

// validateMetadata checks the API's metadata limits: at most 16 keys, keys at
// most 64 characters, values at most 512. A nil map is fine. It returns a 400
// naming "metadata".
func validateMetadata(m *gen.Metadata) error {
	return validateMetadataParam("metadata", m)
}

// validateMetadataParam is validateMetadata for metadata found under another
// parameter path (e.g. "messages[0].metadata").
func validateMetadataParam(param string, m *gen.Metadata) error {
	if m == nil {
		return nil
	}
	if len(*m) > maxMetadataKeys {
		return errBadRequest(param, "Invalid '%s': too many properties. Expected an object with at most %d properties, but got an object with %d properties instead.", param, maxMetadataKeys, len(*m))
	}
	for k, v := range *m {
		if n := utf8.RuneCountInString(k); n > maxMetadataKeyLen {
			return errBadRequest(param, "Invalid '%s': metadata keys must be at most %d characters long, got a key of %d characters.", param, maxMetadataKeyLen, n)
		}
		if n := utf8.RuneCountInString(v); n > maxMetadataValueLen {
			return errBadRequest(param, "Invalid '%s': metadata values must be at most %d characters long, got a value of %d characters for key '%s'.", param, maxMetadataValueLen, n, truncateForMessage(k))
		}
	}
	return nil
}

// validateAttributes checks vector store file attributes: at most 16 keys,
// keys at most 64 characters, string values at most 512.
func validateAttributes(param string, a *gen.VectorStoreFileAttributes) error {
	if a == nil {
		return nil
	}
	if len(*a) > maxMetadataKeys {
		return errBadRequest(param, "Invalid '%s': too many properties. Expected an object with at most %d properties, but got an object with %d properties instead.", param, maxMetadataKeys, len(*a))
	}
	for k, v := range *a {
		if n := utf8.RuneCountInString(k); n > maxMetadataKeyLen {
			return errBadRequest(param, "Invalid '%s': keys must be at most %d characters long, got a key of %d characters.", param, maxMetadataKeyLen, n)
		}
		if s, err := v.AsVectorStoreFileAttributeString(); err == nil {
			if n := utf8.RuneCountInString(s); n > maxMetadataValueLen {
				return errBadRequest(param, "Invalid '%s': string values must be at most %d characters long, got %d characters for key '%s'.", param, maxMetadataValueLen, n, truncateForMessage(k))
			}
		}
	}
	return nil
}
