package api

import _ "embed" // for the OpenAPI document

// OpenAPI is the OpenAPI 3.1 document of the HTTP API, in YAML, as the
// server implements it; a test keeps its paths and methods in step with the
// router.
//
//go:embed openapi.yaml
var OpenAPI []byte
