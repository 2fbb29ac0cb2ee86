// Node recipe (test/test_recipes.py): serve fd 3, the socket hupwatch passes; answer
// "version=V gen=G pid=P" and the generation as X-Generation, which the readiness probe looks for.
const fs = require("fs");
const http = require("http");
const path = require("path");

const version = fs.readFileSync(path.join(__dirname, "VERSION"), "utf8").trim();
const gen = process.env.HUPWATCH_GENERATION || "?";
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "x-generation": gen });
  res.end(`version=${version} gen=${gen} pid=${process.pid}\n`);
});
server.listen({ fd: 3 });
// Drain on TERM: stop accepting, finish what was accepted, then exit 0.
process.on("SIGTERM", () => server.close());
