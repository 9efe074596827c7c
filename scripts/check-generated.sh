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
oapi() { (cd gen && $GO run -modfile="$root/tools/go.mod" github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen "$@"); }

# The same commands as gen/generate.go, with the outputs moved to $tmp.
sed "s|^output:.*|output: $tmp/assistants.gen.go|" gen/config.yaml > "$tmp/client.yaml"
sed "s|^output:.*|output: $tmp/genserver.gen.go|" gen/genserver/config.yaml > "$tmp/server.yaml"
case $SPEC in /*) ;; *) SPEC=$root/$SPEC ;; esac
oapi -config "$tmp/client.yaml" "$SPEC"
oapi -config "$tmp/server.yaml" "$SPEC"
$GO run ./internal/gencalls -gen "$tmp/assistants.gen.go" -server "$tmp/genserver.gen.go" \
	-calls "$tmp/calls.gen.go"

status=0
for pair in assistants.gen.go:gen/assistants.gen.go genserver.gen.go:gen/genserver/genserver.gen.go \
	calls.gen.go:calls.gen.go; do
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
	st=$(git status --porcelain -- gen openapi tools internal/gencalls calls.gen.go)
	if [ -n "$st" ]; then
		echo "check-generated: uncommitted or untracked changes in generated files or their sources:"
		echo "$st"
		exit 1
	fi
fi
echo "check-generated: gen/, gen/genserver/ and calls.gen.go are up to date"
