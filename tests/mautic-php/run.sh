#!/usr/bin/env bash
# Runs the PHPUnit suite of Mautic's PHP client library against a fresh Magpie.
#   tests/mautic-php/run.sh PATH-TO-mautic/api-library [TestClass …]
# Needs: a checkout of https://github.com/mautic/api-library, and the Debian packages
# php-cli php-curl php-mbstring phpunit php-guzzlehttp-guzzle php-guzzlehttp-psr7
# php-psr-http-client php-psr-log. Builds and starts Magpie on a free data dir.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
library="$(cd "${1:?give the path of a mautic/api-library checkout}" && pwd)"
shift
classes=("${@:-ContactsTest ContactFieldsTest NotesTest CompaniesTest TagsTest StagesTest UtmTagsTest ExceptionsTest ResponseTest}")
port=18099
data="$(mktemp -d)"
cargo build --quiet --manifest-path "$here/../../Cargo.toml" -p magpie-tests --bin magpie-test-server
bin="$(cargo metadata --format-version 1 --manifest-path "$here/../../Cargo.toml" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/magpie-test-server"
# The suite's pixel hits come from this machine, which a default Magpie does not track.
printf '[tracking]\ntrack_private_ip_ranges = true\n' >"$data/magpie.toml"
MAGPIE_ADMIN_PASSWORD=admin-pass "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" \
    --config "$data/magpie.toml" >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
# The library's tests read their server from tests/local.config.php.
cat >"$library/tests/local.config.php" <<CONFIG
<?php
return ['AuthMethod' => 'BasicAuth', 'userName' => 'admin', 'password' => 'admin-pass',
    'baseUrl' => 'http://127.0.0.1:$port', 'apiUrl' => 'http://127.0.0.1:$port/api/',
    'testEmail' => 'notexisting@email.com'];
CONFIG
status=0
for class in ${classes[@]}; do
    echo "== $class"
    file="$library/tests/Api/$class.php"
    [ -f "$file" ] || file="$library/tests/$class.php"
    MAUTIC_API_LIBRARY="$library" phpunit -c "$here/phpunit.xml" "$file" || status=1
done
exit $status
