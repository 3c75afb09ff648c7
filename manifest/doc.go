// Package manifest will hold experiment manifests: the record that binds a
// run to exact inputs, code, environment, seeds, outputs and metrics. It
// sits between cli and cas. Empty until the manifests issue lands.
package manifest
