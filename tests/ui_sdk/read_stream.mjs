// Reads a UI message stream (SSE bytes) from stdin with the `ai` package's own client code:
// DefaultChatTransport.processResponseStream (SSE parsing + uiMessageChunkSchema validation),
// then readUIMessageStream (the message assembly useChat uses). Prints one JSON object:
// {message, errors, chunkTypes, finishReason, metadata}.
import { Readable } from "node:stream";
import { DefaultChatTransport, readUIMessageStream } from "ai";

const bytes = Readable.toWeb(process.stdin);
const chunks = new DefaultChatTransport().processResponseStream(bytes);
const [forMessage, forLog] = chunks.tee();

const errors = [];
const chunkTypes = [];
let finishReason = null;
const log = (async () => {
  try {
    for await (const chunk of forLog) {
      chunkTypes.push(chunk.type);
      if (chunk.type === "finish") finishReason = chunk.finishReason ?? null;
    }
  } catch (error) {
    errors.push(`stream: ${error.message}`);
  }
})();

let message = null;
try {
  for await (const snapshot of readUIMessageStream({
    stream: forMessage,
    onError: (error) => errors.push(`message: ${error.message}`),
  })) {
    message = snapshot;
  }
} catch (error) {
  errors.push(`read: ${error.message}`);
}
await log;
process.stdout.write(JSON.stringify({ message, errors, chunkTypes, finishReason }));
