#!/usr/bin/env bash
# check-generated: regenerate everything "make generate" writes into a
# temporary directory and fail when it differs from the committed files, or
# when the generated files, the spec or the generator pin have uncommitted or
# untracked changes. Run from the repository root (make check-generated).
set -euo pipefail
GO=${GO:-go}
SPEC=${SPEC:-openapi/assistants.yaml}
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
oapi() { (cd gen && GO=$GO $GO run "$root/tools.go" oapi-codegen "$@"); }

# The same commands as gen/generate.go, with the outputs moved to $tmp.
case $SPEC in /*) ;; *) SPEC=$root/$SPEC ;; esac
$GO run ./internal/gencalls -overlay-spec "$SPEC" -overlay-out "$tmp/goname.overlay.yaml"
for c in client:gen/config.yaml:assistants.gen.go server:gen/genserver/config.yaml:genserver.gen.go \
	spec:gen/genserver/spec.yaml:spec.gen.go; do
	name=${c%%:*}; rest=${c#*:}; cfg=${rest%%:*}; out=${rest##*:}
	sed -e "s|^output:.*|output: $tmp/$out|" -e "s|path: goname.overlay.yaml|path: $tmp/goname.overlay.yaml|" "$cfg" > "$tmp/$name.yaml"
	oapi -config "$tmp/$name.yaml" "$SPEC"
done
$GO run ./internal/gencalls -gen "$tmp/assistants.gen.go" -server "$tmp/genserver.gen.go" \
	-calls "$tmp/calls.gen.go" -streams "$tmp/streams.gen.go"

status=0
for pair in goname.overlay.yaml:gen/goname.overlay.yaml assistants.gen.go:gen/assistants.gen.go \
	genserver.gen.go:gen/genserver/genserver.gen.go spec.gen.go:gen/genserver/spec.gen.go \
	calls.gen.go:calls.gen.go streams.gen.go:helpers/streams.gen.go; do
	fresh=$tmp/${pair%%:*}
	file=${pair##*:}
	if ! cmp -s "$fresh" "$file"; then
		echo "check-generated: $file is stale; run 'make generate' and commit"
		diff -u "$file" "$fresh" | head -40 || true
		status=1
	fi
done
[ $status -eq 0 ] || exit 1

if git rev-parse --git-dir >/dev/null 2>&1; then
	st=$(git status --porcelain -- gen openapi tools tools.go internal/gencalls calls.gen.go helpers/streams.gen.go)
	if [ -n "$st" ]; then
		echo "check-generated: uncommitted or untracked changes in generated files or their sources:"
		echo "$st"
		exit 1
	fi
fi
echo "check-generated: gen/, gen/genserver/, calls.gen.go and helpers/streams.gen.go are up to date"
