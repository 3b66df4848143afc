// A session of amqplib (Node.js) for fuzz seeds, through scripts/fuzz-capture.py:
//   NODE_PATH=DIR/node_modules scripts/fuzz-capture.py PORT amqplib node scripts/fuzz-capture-amqplib.cjs
// Needs amqplib where Node finds it (`npm install amqplib` in DIR).
const amqp = require("amqplib");

async function main() {
const conn = await amqp.connect(process.env.AMQP_URL);
const ch = await conn.createConfirmChannel();
await ch.assertExchange("fuzz-js", "headers", { autoDelete: true });
const q = await ch.assertQueue("", { exclusive: true, arguments: { "x-max-length": 100, "x-queue-mode": "lazy" } });
await ch.bindQueue(q.queue, "fuzz-js", "", { "x-match": "all", kind: "seed", n: 7 });
for (const size of [0, 1, 300, 70000]) {
  ch.publish("fuzz-js", "", Buffer.alloc(size, 120), {
    headers: { kind: "seed", n: 7, list: [1, "two", { three: true }], when: new Date(0) },
    persistent: true, priority: 3, correlationId: "c1", replyTo: "reply-here",
    contentType: "application/octet-stream", expiration: "60000", messageId: "m1", appId: "seed",
  });
}
await ch.waitForConfirms();
await ch.prefetch(2);
let seen = 0;
await new Promise((resolve) => {
  ch.consume(q.queue, (m) => {
    seen += 1;
    if (seen % 2) ch.ack(m); else ch.nack(m, false, false);
    if (seen === 4) resolve();
  });
});
const got = await ch.get(q.queue);
if (got) ch.ack(got);
await ch.purgeQueue(q.queue);
await ch.close();
await conn.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
