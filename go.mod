module sandbox

go 1.26.8

require (
	github.com/opencontainers/runtime-spec v1.3.0
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require github.com/pelletier/go-toml/v2 v2.4.3

require github.com/spf13/pflag v1.1.0
