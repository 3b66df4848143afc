#!/bin/bash
# The HTTP API's publish against queue limits and bad properties; the record of
# RabbitMQ 3.10.8's answers is tools/probe-http-publish-3.10.8.txt.
# Usage: tools/probe-http-publish.sh BASE_URL (guest/guest)
# probe_http_publish.sh BASE_URL
B=$1; A="-u guest:guest -s -H content-type:application/json"
curl $A -X DELETE $B/api/queues/%2F/probe-rp >/dev/null
curl $A -X PUT $B/api/queues/%2F/probe-rp -d '{"durable":false,"arguments":{"x-max-length":1,"x-overflow":"reject-publish"}}' -o /dev/null -w "declare %{http_code}\n"
for i in 1 2; do
  echo "publish $i: $(curl $A -X POST $B/api/exchanges/%2F/amq.default/publish -d '{"properties":{},"routing_key":"probe-rp","payload":"x","payload_encoding":"string"}' -w ' %{http_code}')"
done
echo "bad expiration: $(curl $A -X POST $B/api/exchanges/%2F/amq.default/publish -d '{"properties":{"expiration":"bad"},"routing_key":"probe-rp","payload":"x","payload_encoding":"string"}' -w ' %{http_code}')"
echo "negative expiration: $(curl $A -X POST $B/api/exchanges/%2F/amq.default/publish -d '{"properties":{"expiration":"-5"},"routing_key":"probe-rp","payload":"x","payload_encoding":"string"}' -w ' %{http_code}')"
echo "reply-to key: $(curl $A -X POST $B/api/exchanges/%2F/amq.default/publish -d '{"properties":{},"routing_key":"amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxAAAAAAAAAAAAAAAAAAAAAA==","payload":"x","payload_encoding":"string"}' -w ' %{http_code}')"
echo "unroutable: $(curl $A -X POST $B/api/exchanges/%2F/amq.default/publish -d '{"properties":{},"routing_key":"no-such-queue","payload":"x","payload_encoding":"string"}' -w ' %{http_code}')"
curl $A -X DELETE $B/api/queues/%2F/probe-rp >/dev/null
