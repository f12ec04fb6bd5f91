// Package testimage builds OCI images on disk for tests, without network:
// layers described entry by entry (Entry, Layer), written as an OCI image
// layout (WriteLayout, Build) that skopeo, umoci and our own image code
// read like any other.
//
// It also owns the fixtures the image tests share: a shell image made from
// the host's static busybox (BusyboxLayer), a layer stack whose merged view
// is spelled out as data (MultiLayerLayers, MultiLayerExpect), and the
// hostile layers an image store must refuse or neutralise
// (MaliciousLayers). The fixtures are data; what a store must do with them
// is asserted by the store's tests, not here.
//
// Everything is deterministic: entries carry a fixed mtime, gzip headers
// carry no name or time, and the config's created date is a constant, so
// the same call yields the same digests on every run.
//
// Runs in: tests only. Build and the tool checks take a testing.TB, which
// is why this is an internal package and not part of the product.
package testimage
