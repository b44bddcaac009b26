// Command pulumi-resource-kubernetes serves the Pulumi Kubernetes provider. Upstream's main package embeds
// JSON files that its `go generate` writes and that are absent from the module zip, so kiln's toolchain
// build writes them next to this file (schema-embed.json with the release version, and
// terraform-mapping-embed.json) from the module's schema.json and terraform-mapping.json, then builds.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
