package api

import (
	"encoding/json"
	"net/http"
)

// problemJSON renders a problem document with its own content type.
type problemJSON struct{ doc any }

func (p problemJSON) Render(w http.ResponseWriter) error {
	return json.NewEncoder(w).Encode(p.doc)
}

func (p problemJSON) WriteContentType(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
}
