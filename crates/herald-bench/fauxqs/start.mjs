// Starts fauxqs (a fast local SQS) for herald-bench on 127.0.0.1 only.
//   node start.mjs [PORT]      (0 or none: a free port)
// Prints {"port":N,"pid":P} on one line once it listens; exits when its standard input
// closes (the bench went away) or on SIGTERM.
//
// fauxqs 1.9.2 hard-codes host 0.0.0.0 in startFauxqs (dist/app.js); rather than patch
// the package, every listen() with an options object is kept on the loopback address.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args[0] !== null && typeof args[0] === "object") {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};

const { startFauxqs } = await import("fauxqs");
const port = Number.parseInt(process.argv[2] ?? "0", 10) || 0;
const server = await startFauxqs({ port, logger: false });
process.stdout.write(JSON.stringify({ port: server.port, pid: process.pid }) + "\n");

const stop = async () => {
  await server.stop().catch(() => {});
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
