// Makes fauxqs answer ReceiveMessage as SQS does about message attributes; run by
// `make fauxqs` after `npm ci`.
//
// SQS returns a message's attributes only when the receive names them
// (`MessageAttributeNames`: a list of names, or `All` / `.*`); a receive that names
// none gets none. fauxqs 1.9.2 returns every attribute then, so each message `herald
// worker` receives would carry the three the publisher sets (`app_id`, `event_type`,
// `event_id`) and their MD5, which the worker never asks for and SQS never sends it:
// parsing them would be counted in section 6's worker CPU. The patch applies fauxqs's
// own filter to every receive, an empty list keeping none.
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL(
  "./node_modules/fauxqs/dist/sqs/actions/receiveMessage.js",
  import.meta.url,
);
const before =
  "    if (messageAttributeNames.length > 0) {\n" +
  "        filterMessageAttributes(messages, messageAttributeNames);\n" +
  "    }";
const after =
  "    filterMessageAttributes(messages, messageAttributeNames); // herald-bench: as SQS, none unless named";

const text = readFileSync(file, "utf8");
if (!text.includes(after)) {
  if (!text.includes(before)) {
    console.error(
      `patch.mjs: ${file.pathname} does not hold the code this patch expects (fauxqs 1.9.2); ` +
        "check the new version's ReceiveMessage and update the patch",
    );
    process.exit(1);
  }
  writeFileSync(file, text.replace(before, after));
}
