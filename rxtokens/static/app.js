// rxtokens web page: start a stream, watch it live, share it, resume it after a reload.
// Plain JS, no build step. The bearer token comes from ?token= (then removed from the
// address bar) or the token field, and is kept in sessionStorage (this tab only).
// EventSource cannot send headers, so the event stream gets the token as ?token=.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "rxtokens.token";
  const STATE_PREFIX = "rxtokens.stream.";
  const events = window.rxtokensEvents; // the server's event format (events.js)

  // -- the token ------------------------------------------------------------------------
  const query = new URLSearchParams(location.search);
  if (query.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, query.get("token"));
    query.delete("token");
    const rest = query.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token").value = token;
  if (!token) $("auth").open = true;
  $("token").addEventListener("change", () => {
    token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
  });
  const authHeaders = () => ({ Authorization: "Bearer " + token });

  // -- state ----------------------------------------------------------------------------
  let source = null; // the EventSource
  let current = null; // {id, text, lastId, count, startedAt, firstAt, fresh, readToken}
  let saveTimer = null;

  function setStatus(name, text) {
    const el = $("status");
    el.className = "status " + name;
    el.textContent = text || name;
    document.body.dataset.status = name;
  }

  function showError(message) {
    const el = $("error");
    el.hidden = !message;
    el.textContent = message || "";
  }

  function save() {
    if (!current) return;
    sessionStorage.setItem(
      STATE_PREFIX + current.id,
      JSON.stringify({
        text: current.text,
        lastId: current.lastId,
        count: current.count,
        readToken: current.readToken,
        ttft: current.ttft,
        prompt: current.prompt,
      }),
    );
  }

  function saveSoon() {
    if (saveTimer === null) saveTimer = setTimeout(() => { saveTimer = null; save(); }, 150);
  }

  function render() {
    $("output").textContent = current ? current.text : "";
    $("count").textContent = current ? String(current.count) : "0";
  }

  function updateMetrics() {
    if (!current || current.firstAt === null) return;
    if (current.fresh && current.ttft === null) current.ttft = Math.round(current.firstAt - current.startedAt);
    if (current.ttft !== null) $("ttft").textContent = current.ttft + " ms";
    const seconds = (performance.now() - current.firstAt) / 1000;
    const live = current.liveCount;
    if (live > 1 && seconds > 0) $("rate").textContent = ((live - 1) / seconds).toFixed(1);
  }

  function streamIdFromHash() {
    const match = /(?:^#|&)stream=([A-Za-z0-9_-]+)/.exec(location.hash);
    return match ? match[1] : null;
  }

  function closeSource() {
    if (source) source.close();
    source = null;
  }

  function finish(status, message) {
    closeSource();
    save();
    setStatus(status);
    showError(message || "");
    $("stop").disabled = true;
    $("send").disabled = false;
  }

  // -- attaching to a stream ------------------------------------------------------------
  function attach(id, options) {
    closeSource();
    const opts = options || {};
    const saved = JSON.parse(sessionStorage.getItem(STATE_PREFIX + id) || "null") || {};
    current = {
      id,
      text: saved.text || "",
      lastId: saved.lastId || "",
      count: saved.count || 0,
      readToken: opts.readToken || saved.readToken || "",
      startedAt: opts.startedAt !== undefined ? opts.startedAt : performance.now(),
      fresh: Boolean(opts.fresh),
      firstAt: null,
      liveCount: 0,
      ttft: saved.ttft !== undefined ? saved.ttft : null,
      prompt: opts.prompt || saved.prompt || "",
    };
    if (current.prompt && !$("prompt").value) $("prompt").value = current.prompt;
    render();
    showError("");
    $("ttft").textContent = current.ttft !== null ? current.ttft + " ms" : "–";
    $("rate").textContent = "–";
    const share = $("share");
    share.textContent = id.slice(0, 8) + "…";
    const shareToken = current.readToken || token;
    share.href = "/?token=" + encodeURIComponent(shareToken) + "#stream=" + id;
    let url = "/v1/streams/" + encodeURIComponent(id) + "/events?token=" + encodeURIComponent(token);
    if (current.lastId) url += "&last_event_id=" + encodeURIComponent(current.lastId);
    setStatus("streaming", current.lastId ? "resuming" : "streaming");
    $("stop").disabled = false;
    $("send").disabled = true;
    const es = new EventSource(url);
    source = es;
    const onToken = (item) => {
      const seq = Number(item.id);
      if (current.lastId && seq <= Number(current.lastId)) return; // never twice
      current.lastId = item.id;
      current.count += 1;
      current.liveCount += 1;
      if (current.firstAt === null) current.firstAt = performance.now();
      const token = item.token;
      if (token.type === "text" && (token.index || 0) === 0) current.text += token.text;
      render();
      updateMetrics();
      saveSoon();
      setStatus("streaming");
    };
    const onDone = (item) => {
      const completion = item.completion;
      if (completion.text !== current.text) { current.text = completion.text; render(); }
      updateMetrics();
      finish("done");
    };
    const onFailed = (item) => { // the stream failed or was cancelled
      const shown = item.type ? item.type + ": " + item.message : item.message;
      finish(item.type === "cancelled" ? "cancelled" : "error", shown);
    };
    const handlers = { token: onToken, done: onDone, error: onFailed };
    events.listen(
      es,
      (item) => {
        if (es === source && item !== null) handlers[item.kind](item);
      },
      () => {
        if (es !== source) return;
        if (es.readyState === EventSource.CLOSED) {
          finish("error", "cannot read this stream (wrong token, or it expired)");
        } else {
          setStatus("reconnecting"); // EventSource retries with Last-Event-ID by itself
        }
      },
    );
  }

  // -- actions ----------------------------------------------------------------------------
  async function start(event) {
    event.preventDefault();
    const prompt = $("prompt").value.trim();
    if (!prompt) return;
    token = $("token").value.trim() || token;
    sessionStorage.setItem(TOKEN_KEY, token);
    showError("");
    setStatus("streaming", "starting");
    $("send").disabled = true;
    const startedAt = performance.now();
    let response;
    try {
      response = await fetch("/v1/streams", {
        method: "POST",
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ prompt, keep_alive: $("keep-alive").checked }),
      });
    } catch (err) {
      finish("error", "cannot reach the server: " + err);
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      finish("error", (body.error && body.error.message) || "HTTP " + response.status);
      if (response.status === 401) $("auth").open = true;
      return;
    }
    history.replaceState(null, "", location.pathname + location.search + "#stream=" + body.id);
    attach(body.id, { fresh: true, startedAt, readToken: body.read_token, prompt });
  }

  async function stop() {
    if (!current) return;
    await fetch("/v1/streams/" + encodeURIComponent(current.id), { method: "DELETE", headers: authHeaders() });
  }

  $("ask").addEventListener("submit", start);
  $("stop").addEventListener("click", stop);
  window.addEventListener("hashchange", () => {
    const id = streamIdFromHash();
    if (id && (!current || current.id !== id)) attach(id);
  });
  window.addEventListener("pagehide", save);

  const initial = streamIdFromHash();
  if (initial) attach(initial);
  else setStatus("idle");
})();
