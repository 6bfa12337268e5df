// Drives a chat against a running server with the `ai` package's own chat client:
// AbstractChat (what useChat wraps) over DefaultChatTransport (POST {api}, GET {api}/{id}/stream).
// argv[2]: JSON {api, token, chatId, actions: [...]}; each action is one of
//   {"send": text}                          send a user message and wait for the answer
//   {"send": text, "stopWhen": substring}   ... and press "stop" once the answer contains it
//   {"send": text, "dropWhen": substring}   ... and cut the connection (a network error) then
//   {"resume": true}                        resume the chat's active stream
// Prints {messages, status, error, finishes, requests}.
import { AbstractChat, DefaultChatTransport } from "ai";

const config = JSON.parse(process.argv[2]);

class State {
  constructor() {
    this.messages = [];
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage(message) {
    this.messages = this.messages.concat(message);
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  }
  snapshot(thing) {
    return structuredClone(thing);
  }
}

let cut = null; // cuts the response being read, as a dropped connection would
const requests = [];
async function fetchWithCut(url, init) {
  requests.push(`${init?.method ?? "GET"} ${new URL(url).pathname}`);
  const response = await fetch(url, init);
  if (!response.body) return response;
  const reader = response.body.getReader();
  let failed = false;
  const body = new ReadableStream({
    start(controller) {
      cut = () => {
        failed = true;
        controller.error(new TypeError("network error"));
        reader.cancel().catch(() => {});
      };
    },
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (failed) return;
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        if (!failed) controller.error(error);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}

const finishes = [];
const chat = new AbstractChat({
  id: config.chatId,
  state: new State(),
  transport: new DefaultChatTransport({
    api: config.api,
    headers: config.token ? { authorization: `Bearer ${config.token}` } : {},
    fetch: fetchWithCut,
  }),
  onFinish: ({ finishReason, isAbort, isError, isDisconnect }) =>
    finishes.push({ finishReason: finishReason ?? null, isAbort, isError, isDisconnect }),
});

function answerText() {
  const last = chat.messages[chat.messages.length - 1];
  if (!last || last.role !== "assistant") return "";
  return last.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
}

async function whenAnswerContains(substring) {
  const deadline = Date.now() + 20000;
  while (!answerText().includes(substring)) {
    if (Date.now() > deadline) throw new Error(`the answer never contained ${substring}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

for (const action of config.actions) {
  if (action.resume) {
    await chat.resumeStream();
  } else if (action.stopWhen) {
    const sending = chat.sendMessage({ text: action.send });
    await whenAnswerContains(action.stopWhen);
    await chat.stop();
    await sending;
  } else if (action.dropWhen) {
    const sending = chat.sendMessage({ text: action.send });
    await whenAnswerContains(action.dropWhen);
    cut();
    await sending;
  } else {
    await chat.sendMessage({ text: action.send });
  }
}

process.stdout.write(
  JSON.stringify({
    messages: chat.messages,
    status: chat.status,
    error: chat.error ? chat.error.message : null,
    finishes,
    requests,
  }),
);
