#!/usr/bin/env bash
# The README's "Example session" as a script: start the service on a fresh data folder (`make run`), then run
# `bash docs/examples/session.sh` (it needs curl and jq). Every command below this header appears, in this order,
# in the console blocks of that README section. tests/e2e/test_readme_session.py checks that, replays the
# commands against a real server and compares each output with the one the README shows.
set -euo pipefail

API=http://127.0.0.1:8000/api/v1
curl -si $API/auth/register -H 'Content-Type: application/json' \
    -d '{"email":"ada@example.com","password":"correct horse battery staple","username":"ada","full_name":"Ada Lovelace"}'

PAIR=$(curl -s $API/auth/login -H 'Content-Type: application/json' \
    -d '{"login":"ada@example.com","password":"correct horse battery staple"}')
echo "$PAIR"
ACCESS=$(echo "$PAIR" | jq -r .access_token)  REFRESH=$(echo "$PAIR" | jq -r .refresh_token)
curl -s $API/users/me -H "Authorization: Bearer $ACCESS"

PAIR=$(curl -s $API/auth/refresh -H 'Content-Type: application/json' -d "{\"refresh_token\":\"$REFRESH\"}")
echo "$PAIR"
ACCESS=$(echo "$PAIR" | jq -r .access_token)  REFRESH=$(echo "$PAIR" | jq -r .refresh_token)

PHONE_ACCESS=$(curl -s $API/auth/login -A 'AdaPhone/1.0' -H 'Content-Type: application/json' \
    -d '{"login":"ada","password":"correct horse battery staple"}' | jq -r .access_token)
curl -s $API/users/me/sessions -H "Authorization: Bearer $ACCESS"

curl -s $API/users/me/password -H "Authorization: Bearer $ACCESS" -H 'Content-Type: application/json' \
    -d '{"current_password":"correct horse battery staple","new_password":"lovelace2024"}'
curl -si $API/users/me/password -H "Authorization: Bearer $ACCESS" -H 'Content-Type: application/json' \
    -d '{"current_password":"correct horse battery staple","new_password":"a much longer passphrase"}'
curl -si $API/users/me -H "Authorization: Bearer $PHONE_ACCESS"
curl -s "$API/users/me/events?limit=3" -H "Authorization: Bearer $ACCESS"

curl -si -X POST $API/auth/logout -H "Authorization: Bearer $ACCESS"
curl -s $API/users/me -H "Authorization: Bearer $ACCESS"
curl -s $API/auth/refresh -H 'Content-Type: application/json' -d "{\"refresh_token\":\"$REFRESH\"}"

ACCESS=$(curl -s $API/auth/login -H 'Content-Type: application/json' \
    -d '{"login":"ada","password":"a much longer passphrase"}' | jq -r .access_token)
curl -s -X DELETE $API/users/me -H "Authorization: Bearer $ACCESS" -H 'Content-Type: application/json' \
    -d '{"password":"nope nope nope"}'
curl -s "$API/users/me/events?limit=1" -H "Authorization: Bearer $ACCESS"
curl -s -X DELETE $API/users/me -H "Authorization: Bearer $ACCESS" -H 'Content-Type: application/json' \
    -d '{"password":"a much longer passphrase"}'

curl -s -o /dev/null -w '%{http_code}\n' $API/auth/register -H 'Content-Type: application/json' \
    -d '{"email":"grace@example.com","password":"another long passphrase"}'
OLD_REFRESH=$(curl -s $API/auth/login -H 'Content-Type: application/json' \
    -d '{"login":"grace@example.com","password":"another long passphrase"}' | jq -r .refresh_token)
NEW_REFRESH=$(curl -s $API/auth/refresh -H 'Content-Type: application/json' \
    -d "{\"refresh_token\":\"$OLD_REFRESH\"}" | jq -r .refresh_token)
curl -s $API/auth/refresh -H 'Content-Type: application/json' -d "{\"refresh_token\":\"$OLD_REFRESH\"}"
curl -s $API/auth/refresh -H 'Content-Type: application/json' -d "{\"refresh_token\":\"$NEW_REFRESH\"}"
ACCESS=$(curl -s $API/auth/login -H 'Content-Type: application/json' \
    -d '{"login":"grace@example.com","password":"another long passphrase"}' | jq -r .access_token)
curl -s $API/users/me/events -H "Authorization: Bearer $ACCESS" | jq -c '[.items[].type]'

for i in $(seq 10); do curl -s -o /dev/null $API/auth/login -H 'Content-Type: application/json' \
    -d '{"login":"grace@example.com","password":"not my password"}'; done
curl -si $API/auth/login -H 'Content-Type: application/json' \
    -d '{"login":"grace@example.com","password":"another long passphrase"}'
