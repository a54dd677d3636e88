// `npm run webhook-receiver`: a stand-in vendor endpoint for local development. Listens on
// 127.0.0.1:9999 (PORT to change), prints every event stratus pushes, and answers 204.
import { createServer } from "node:http";

const port = Number(process.env.PORT ?? 9999);
createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => {
    body += chunk;
  });
  request.on("end", () => {
    const id = request.headers["webhook-id"];
    const signature = request.headers["webhook-signature"];
    console.log(
      `${new Date().toISOString()} ${request.method} ${request.url} webhook-id=${id}\n  ${body}\n  signature ${signature}`,
    );
    response.writeHead(204).end();
  });
}).listen(port, "127.0.0.1", () => console.log(`webhook receiver on http://127.0.0.1:${port}/hooks`));
