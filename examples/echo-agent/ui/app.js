// echo-agent's UI: finds the REST surface through ui-config.json, then calls the agent.
(function () {
  const out = document.getElementById("out");
  let apiBase = "";

  async function loadConfig() {
    try {
      const cfg = await (await fetch("ui-config.json")).json();
      apiBase = (cfg.apiBase || "").replace(/\/$/, "");
    } catch (e) {
      apiBase = "";  // no config: same origin
    }
  }

  async function call(method, path, body, type) {
    const opts = { method: method, headers: {} };
    if (body !== undefined) {
      opts.body = body;
      opts.headers["Content-Type"] = type;
    }
    try {
      const r = await fetch(apiBase + path, opts);
      out.textContent = window.echoFormat(r.status, await r.text());
    } catch (e) {
      out.textContent = "request failed: " + e;
    }
  }

  const text = () => document.getElementById("text").value;
  document.getElementById("hello").onclick = () => call("GET", "/api/hello");
  document.getElementById("echo").onclick = () => call("POST", "/api/echo", text(), "text/plain");
  document.getElementById("invoke").onclick = () =>
    call("POST", "/invocations", JSON.stringify({ text: text() }), "application/json");
  loadConfig();
})();
