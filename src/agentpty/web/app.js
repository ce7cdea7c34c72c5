// agentpty web UI: projects, milestones and the live terminal.
//
// Plain ES module, no framework, no build step. Routing is by hash:
// `#/` projects page, `#/projects/<id>` project page. Every piece of server
// text reaches the page through textContent, never innerHTML.
//
// Auth: `/?token=T` (printed by `agentpty serve`) sets an HttpOnly cookie that
// every /api request and the WebSocket carry; any 401 (or close code 4001)
// shows the sign-in panel.

import { AgentStates, renderBadge, setUpNotifyButton } from "./agent-state.js";

const POLL_MS = 5000;
const RESIZE_DEBOUNCE_MS = 120;
const MAX_BACKOFF_S = 30;
// Output arrives as binary frames of raw UTF-8 (no JSON per frame); status,
// error and closed stay JSON text frames. A server that does not know the
// dialect answers in JSON, which onmessage handles as well.
const BINARY_PROTOCOL = "agentpty.v2.binary";

const CLOSE = Object.freeze({
  NORMAL: 1000,
  BAD_ID: 4000,
  UNAUTHORIZED: 4001,
  ORIGIN_REFUSED: 4003,
  NOT_FOUND: 4004,
  START_FAILED: 4005,
});

const MILESTONE_STATUS_LABEL = Object.freeze({
  pending: "pending",
  in_progress: "in progress",
  completed: "completed",
  failed: "failed",
});

const $ = (id) => document.getElementById(id);

// Every project's agent state, from the server's event stream (see agent-state.js).
const agentStates = new AgentStates();

/** Create an element with a class and (escaped) text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

// ---------------------------------------------------------------- HTTP API

class SignInRequired extends Error {}

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code || null;
  }
}

function errorText(payload, response) {
  const detail = payload && payload.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI validation errors: [{loc: ["body", "name"], msg}, ...]
    return detail
      .map((item) => {
        const where = (item.loc || []).slice(1).join(".") || "request";
        return `${where}: ${item.msg}`;
      })
      .join("; ");
  }
  return `${response.status} ${response.statusText || "error"}`;
}

/** Call the API; resolve to the JSON body (null for 204), throw ApiError or SignInRequired. */
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `agentpty is not reachable (${err.message})`, "NETWORK");
  }
  if (response.status === 401) {
    showSignIn();
    throw new SignInRequired("sign-in required");
  }
  const text = await response.text();
  let payload = null;
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, errorText(payload, response), payload && payload.code);
  }
  return payload;
}

/** Report an error in `target` unless it only means "sign in first". */
function report(target, err) {
  if (err instanceof SignInRequired) return;
  target.textContent = err instanceof ApiError ? err.message : `unexpected error: ${err}`;
  if (!(err instanceof ApiError)) console.error(err);
}

// ---------------------------------------------------------------- views and routing

const VIEWS = ["signin-view", "projects-view", "project-view", "missing-view"];
let page = null; // the active page: { leave() }

function showView(id) {
  for (const view of VIEWS) $(view).hidden = view !== id;
}

function setCrumb(projectName) {
  $("crumb-sep").hidden = projectName === null;
  $("crumb-project").textContent = projectName || "";
  agentStates.setBaseTitle(projectName ? `${projectName} · agentpty` : "agentpty");
}

function leavePage() {
  if (page) {
    const old = page;
    page = null;
    old.leave();
  }
}

function route() {
  leavePage();
  const hash = location.hash || "#/";
  const match = /^#\/projects\/([^/?#]+)\/?$/.exec(hash);
  if (match) {
    page = new ProjectPage(decodeURIComponent(match[1]));
  } else if (hash === "#/" || hash === "#" || hash === "") {
    page = new ProjectsPage();
  } else {
    showMissing(`There is no page at ${hash}.`);
    return;
  }
  page.enter();
}

function showMissing(text) {
  leavePage();
  setCrumb(null);
  $("missing-detail").textContent = text;
  showView("missing-view");
}

function showSignIn() {
  leavePage();
  setCrumb(null);
  showView("signin-view");
  $("signin-token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("signin-token").value.trim();
  const error = $("signin-error");
  error.textContent = "";
  if (!token) return;
  // Check first, so a wrong token gets a message here rather than a bare JSON page.
  try {
    const response = await fetch("/api/output-projects?limit=1", {
      headers: { Authorization: `Bearer ${token}` },
      credentials: "omit",
    });
    if (response.status === 401) {
      error.textContent = "That token is not the one this server printed.";
      return;
    }
  } catch {
    // Unreachable now: let the navigation below show what happens.
  }
  // The server moves the token into an HttpOnly cookie and redirects to "/";
  // the browser carries the #route over the redirect.
  location.assign(`/?token=${encodeURIComponent(token)}${location.hash}`);
}

// ---------------------------------------------------------------- projects page

class ProjectsPage {
  constructor() {
    this.timer = null;
    this.rows = new Map(); // project id -> <li>
    this.active = false;
  }

  enter() {
    this.active = true;
    setCrumb(null);
    showView("projects-view");
    agentStates.start();
    this.unsubscribe = agentStates.subscribe((projectId, info) => {
      const row = this.rows.get(projectId);
      if (row) renderBadge(row.parts.agentState, info);
    });
    // Rows from an earlier visit may be stale: start clean.
    $("project-list").replaceChildren();
    $("projects-empty").hidden = true;
    $("projects-total").textContent = "";
    $("projects-error").textContent = "";
    this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, POLL_MS);
    $("create-name").focus();
  }

  leave() {
    this.active = false;
    clearInterval(this.timer);
    if (this.unsubscribe) this.unsubscribe();
  }

  onVisible() {
    this.refresh();
  }

  async refresh() {
    let body;
    try {
      body = await api("GET", "/api/output-projects?limit=1000");
    } catch (err) {
      if (this.active) report($("projects-error"), err);
      return;
    }
    if (!this.active) return;
    $("projects-error").textContent = "";
    this.render(body.output_projects || [], body.total ?? 0);
  }

  render(projects, total) {
    const list = $("project-list");
    $("projects-empty").hidden = projects.length > 0;
    $("projects-total").textContent = total === 1 ? "1 project" : `${total} projects`;
    const seen = new Set();
    projects.forEach((project, index) => {
      seen.add(project.id);
      let row = this.rows.get(project.id);
      if (!row) {
        row = this.buildRow(project);
        this.rows.set(project.id, row);
      }
      this.updateRow(row, project);
      // Update in place and move only when needed: keeps keyboard focus across refreshes.
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
  }

  buildRow(project) {
    const row = el("li", "project-card");
    row.dataset.projectId = project.id;
    const head = el("div", "pc-head");
    const link = el("a", "pc-name");
    link.href = `#/projects/${encodeURIComponent(project.id)}`;
    const agent = el("span", "badge agent");
    const state = el("span", "badge state");
    const agentState = el("span", "badge agent-state");
    head.append(link, agentState, agent, state);

    const counts = el("div", "pc-counts");
    for (const status of Object.keys(MILESTONE_STATUS_LABEL)) {
      const count = el("span", "count");
      count.dataset.status = status;
      counts.append(count);
    }

    const foot = el("div", "pc-foot");
    const path = el("span", "pc-path mono");
    const pathText = el("span", "pc-path-text");
    path.append(pathText);
    const remove = el("button", "danger small", "Delete");
    remove.type = "button";
    remove.addEventListener("click", () => this.remove(row.project));
    foot.append(path, remove);

    row.append(head, counts, foot);
    row.parts = { link, agent, state, agentState, counts, path, pathText, remove };
    return row;
  }

  updateRow(row, project) {
    row.project = project;
    const { link, agent, state, agentState, counts, path, pathText, remove } = row.parts;
    link.textContent = project.name;
    agentStates.remember(project.id, project);
    renderBadge(agentState, agentStates.byProject.get(project.id));
    agent.textContent = project.agent;
    const sessionState = (project.session && project.session.state) || "none";
    state.textContent = sessionState;
    state.dataset.state = sessionState;
    state.title = `session: ${sessionState}`;
    const milestones = project.milestones || {};
    for (const count of counts.children) {
      const status = count.dataset.status;
      const n = milestones[status] || 0;
      count.textContent = `${n} ${MILESTONE_STATUS_LABEL[status]}`;
      count.classList.toggle("zero", n === 0);
    }
    pathText.textContent = project.workspace_path;
    path.title = project.workspace_path;
    remove.setAttribute("aria-label", `Delete project ${project.name}`);
  }

  async remove(project) {
    const question =
      `Delete project "${project.name}"?\n\n` +
      `Its session is stopped. The files in ${project.workspace_path} are kept.`;
    if (!window.confirm(question)) return;
    try {
      await api("DELETE", `/api/output-projects/${encodeURIComponent(project.id)}`);
    } catch (err) {
      report($("projects-error"), err);
    }
    await this.refresh();
  }

  async create(event) {
    event.preventDefault();
    const name = $("create-name").value.trim();
    const agent = $("create-agent").value;
    const error = $("create-error");
    const unavailable = $("agent-unavailable");
    error.textContent = "";
    unavailable.hidden = true;
    if (!name) {
      error.textContent = "Give the project a name.";
      $("create-name").focus();
      return;
    }
    const submit = $("create-submit");
    submit.disabled = true;
    try {
      await api("POST", "/api/output-projects", { name, agent });
      $("create-name").value = "";
      await this.refresh();
    } catch (err) {
      if (err instanceof ApiError && err.code === "AGENT_UNAVAILABLE") {
        $("agent-unavailable-detail").textContent = err.message;
        unavailable.hidden = false;
      } else {
        report(error, err);
      }
    } finally {
      submit.disabled = false;
      if (this.active) $("create-name").focus();
    }
  }
}

// ---------------------------------------------------------------- terminal connection

/**
 * One project's terminal WebSocket, reconnecting after unexpected drops.
 *
 * Calls `ui.indicator(kind, text)`, `ui.notice(text)`, `ui.status(frame)`,
 * `ui.exited(exitCode)`. `close()` ends it for good (leaving the page).
 */
class TerminalConnection {
  constructor(projectId, term, ui) {
    this.projectId = projectId;
    this.term = term;
    this.ui = ui;
    this.ws = null;
    this.attempt = 0; // failed attempts since the last good status: drives the backoff
    this.retryTimer = null;
    this.retryTick = null;
    this.exited = false;
    this.lastError = null;
    this.freshScreen = false;
    this.done = false;
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const id = encodeURIComponent(this.projectId);
    // Cookie auth: never a token in this URL.
    return `${scheme}//${location.host}/api/output-projects/${id}/terminal?rows=${this.term.rows}&cols=${this.term.cols}`;
  }

  connect() {
    if (this.done) return;
    this.cancelRetry();
    this.drop();
    this.exited = false;
    this.lastError = null;
    this.ui.indicator("connecting", "connecting…");
    const ws = new WebSocket(this.url(), [BINARY_PROTOCOL]);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      if (event.data instanceof ArrayBuffer) {
        this.onOutput(new Uint8Array(event.data));
        return;
      }
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onClose(event);
    };
  }

  /** Forget the current socket without reacting to its close. */
  drop() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onmessage = null;
      ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(CLOSE.NORMAL, "client left");
    }
  }

  close() {
    this.done = true;
    this.cancelRetry();
    this.drop();
  }

  send(message) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  onFrame(frame) {
    switch (frame.type) {
      case "status": {
        this.attempt = 0;
        this.exited = false;
        this.lastError = null;
        // The next output is a full screen snapshot: draw it on a clean terminal.
        this.freshScreen = true;
        if (frame.resumed && frame.agent_session_id) {
          this.ui.indicator(
            "resumed",
            `resumed conversation ${String(frame.agent_session_id).slice(0, 8)}`,
          );
        } else {
          this.ui.indicator("live", "live");
        }
        this.ui.status(frame);
        break;
      }
      case "output": {
        this.onOutput(frame.data);
        break;
      }
      case "error": {
        if (frame.code === "SESSION_EXPIRED") {
          // A fresh conversation follows on this same socket, with its own status.
          this.ui.notice(frame.message);
        } else {
          this.lastError = frame.message || frame.code || "unknown error";
          this.ui.notice(`error: ${this.lastError}`);
        }
        break;
      }
      case "state": {
        // The agent's state (h12): now, and on every change; same shape as the event stream.
        agentStates.onState({ ...frame, project_id: frame.project_id || this.projectId });
        break;
      }
      case "closed": {
        this.exited = true;
        this.ui.indicator("exited", `exited (code ${frame.exit_code ?? "unknown"})`);
        this.ui.exited(frame.exit_code);
        break;
      }
      default:
        break;
    }
  }

  /** Draw output: a string (JSON dialect) or UTF-8 bytes (binary; xterm.js decodes them). */
  onOutput(data) {
    if (this.freshScreen) {
      this.freshScreen = false;
      this.term.reset();
    }
    this.term.write(data);
  }

  onClose(event) {
    if (this.done) return;
    switch (event.code) {
      case CLOSE.UNAUTHORIZED:
        showSignIn();
        return;
      case CLOSE.ORIGIN_REFUSED:
        this.fail(
          "this page's origin is not allowed to open the terminal " +
            "(add it to AGENTPTY_ALLOWED_ORIGINS)",
        );
        return;
      case CLOSE.NOT_FOUND:
        this.fail(this.lastError || "no such output project");
        return;
      case CLOSE.START_FAILED:
        this.fail(this.lastError || "the session could not start");
        return;
      case CLOSE.BAD_ID:
        this.fail(this.lastError || "malformed project id");
        return;
      default:
        break;
    }
    // After `closed` the process is gone: reconnecting would start it again.
    if (this.exited) return;
    this.scheduleRetry();
  }

  fail(message) {
    this.ui.indicator("error", `error: ${message}`);
  }

  scheduleRetry() {
    const delay = Math.min(2 ** this.attempt, MAX_BACKOFF_S);
    this.attempt += 1;
    let remaining = delay;
    const show = () => this.ui.indicator("reconnecting", `reconnecting in ${remaining}s…`);
    show();
    this.retryTick = setInterval(() => {
      remaining = Math.max(remaining - 1, 1);
      show();
    }, 1000);
    this.retryTimer = setTimeout(() => this.connect(), delay * 1000);
  }

  cancelRetry() {
    clearTimeout(this.retryTimer);
    clearInterval(this.retryTick);
    this.retryTimer = null;
    this.retryTick = null;
  }

  /** The user stopped the session while no socket was attached: do not reconnect. */
  markStopped(exitCode) {
    this.cancelRetry();
    this.exited = true;
    this.ui.indicator("exited", `exited (code ${exitCode ?? "unknown"})`);
  }
}

// ---------------------------------------------------------------- project page

const TERMINAL_THEME = {
  background: "#0d1117",
  foreground: "#e6edf3",
  cursor: "#e6edf3",
  selectionBackground: "#264f78",
  black: "#484f58",
  red: "#ff7b72",
  green: "#3fb950",
  yellow: "#d29922",
  blue: "#58a6ff",
  magenta: "#bc8cff",
  cyan: "#39c5cf",
  white: "#b1bac4",
  brightBlack: "#6e7681",
  brightRed: "#ffa198",
  brightGreen: "#56d364",
  brightYellow: "#e3b341",
  brightBlue: "#79c0ff",
  brightMagenta: "#d2a8ff",
  brightCyan: "#56d4dd",
  brightWhite: "#f0f6fc",
};

class ProjectPage {
  constructor(projectId) {
    this.id = projectId;
    this.project = null;
    this.active = false;
    this.term = null;
    this.fit = null;
    this.conn = null;
    this.observer = null;
    this.resizeTimer = null;
    this.pollTimer = null;
    this.milestoneRows = new Map();
    this.milestonesAvailable = true;
    this.onWindowResize = () => this.scheduleFit();
    this.narrow = window.matchMedia("(max-width: 640px)");
    this.onNarrowChange = () => {
      if (!this.term) return;
      this.term.options.fontSize = this.narrow.matches ? 12 : 14;
      this.scheduleFit();
    };
  }

  get base() {
    return `/api/output-projects/${encodeURIComponent(this.id)}`;
  }

  async enter() {
    this.active = true;
    this.resetView();
    showView("project-view");
    setCrumb(null);
    agentStates.start();
    this.unsubscribe = agentStates.subscribe((projectId, info) => {
      if (projectId === this.id) renderBadge($("project-agent-state"), info);
    });
    this.openTerminal();
    let project;
    try {
      project = await api("GET", this.base);
    } catch (err) {
      if (!this.active) return;
      if (err instanceof ApiError && err.status === 404) {
        showMissing(err.message || "No such project.");
      } else if (!(err instanceof SignInRequired)) {
        this.indicator("error", `error: ${err.message}`);
      }
      return;
    }
    if (!this.active) return;
    this.project = project;
    setCrumb(project.name);
    $("project-name").textContent = project.name;
    $("project-name").title = project.name;
    $("project-agent").textContent = project.agent;
    agentStates.remember(project.id, project);
    renderBadge($("project-agent-state"), agentStates.byProject.get(project.id));
    $("project-path").textContent = project.workspace_path;
    $("sd-agent").textContent = project.agent;
    this.showSession(project.session || {});
    if (this.conn) this.conn.connect();
    this.refreshMilestones();
    this.pollTimer = setInterval(() => {
      if (document.visibilityState === "visible") this.poll();
    }, POLL_MS);
  }

  leave() {
    this.active = false;
    if (this.unsubscribe) this.unsubscribe();
    clearInterval(this.pollTimer);
    clearTimeout(this.resizeTimer);
    window.removeEventListener("resize", this.onWindowResize);
    this.narrow.removeEventListener("change", this.onNarrowChange);
    if (this.observer) this.observer.disconnect();
    if (this.conn) this.conn.close();
    if (this.term) this.term.dispose();
    if (window.agentptyTerm === this.term) window.agentptyTerm = null;
    $("terminal").replaceChildren();
  }

  onVisible() {
    this.poll();
  }

  poll() {
    this.refreshSession();
    this.refreshMilestones();
  }

  resetView() {
    $("project-name").textContent = "";
    $("project-agent").textContent = "";
    $("project-path").textContent = "";
    $("notice").textContent = "";
    $("milestone-error").textContent = "";
    $("milestone-list").replaceChildren();
    $("milestones-empty").hidden = true;
    $("milestones-unavailable").hidden = true;
    this.setMilestoneFormEnabled(true);
    for (const id of ["sd-pid", "sd-agent", "sd-conversation", "sd-clients", "sd-started", "sd-exit"]) {
      $(id).textContent = "–";
    }
    this.indicator("connecting", "connecting…");
  }

  // -- terminal

  openTerminal() {
    const container = $("terminal");
    container.replaceChildren();
    if (typeof window.Terminal !== "function" || !window.FitAddon) {
      container.append(
        el("p", "term-missing", "xterm.js is not installed next to the UI: run `make web` and reload."),
      );
      this.indicator("error", "error: xterm.js missing (run make web)");
      return;
    }
    const term = new window.Terminal({
      cursorBlink: true,
      fontFamily: '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: this.narrow.matches ? 12 : 14,
      // Below 1.2 the DOM renderer clips underscores at the bottom of the cell.
      lineHeight: 1.2,
      scrollback: 5000,
      theme: TERMINAL_THEME,
    });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(container);
    this.term = term;
    this.fit = fit;
    window.agentptyTerm = term; // for tests and the console: read term.buffer.active
    this.fitNow();

    this.conn = new TerminalConnection(this.id, term, {
      indicator: (kind, text) => this.active && this.indicator(kind, text),
      notice: (text) => this.active && this.notice(text),
      status: (frame) => this.active && this.onStatus(frame),
      exited: () => this.active && this.refreshSession(),
    });
    term.onData((data) => this.conn.send({ type: "input", data }));
    term.onResize(({ rows, cols }) => this.conn.send({ type: "resize", rows, cols }));

    this.observer = new ResizeObserver(() => this.scheduleFit());
    this.observer.observe(container);
    window.addEventListener("resize", this.onWindowResize);
    this.narrow.addEventListener("change", this.onNarrowChange);
    term.focus();
  }

  scheduleFit() {
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => this.fitNow(), RESIZE_DEBOUNCE_MS);
  }

  fitNow() {
    if (!this.fit || !this.active) return;
    try {
      this.fit.fit(); // resizes the terminal, whose onResize tells the server
    } catch (err) {
      console.warn("fit failed", err);
    }
  }

  indicator(kind, text) {
    const node = $("indicator");
    node.dataset.kind = kind;
    node.textContent = text;
  }

  notice(text) {
    $("notice").textContent = text;
  }

  onStatus(frame) {
    if (frame.agent) $("sd-agent").textContent = frame.agent;
    this.refreshSession();
  }

  async start() {
    const button = $("btn-start");
    button.disabled = true;
    this.notice("");
    try {
      const size = this.term ? { rows: this.term.rows, cols: this.term.cols } : {};
      const info = await api("POST", `${this.base}/session`, size);
      if (!this.active) return;
      this.showSession(info);
      if (this.conn && (!this.conn.open || this.conn.exited)) this.conn.connect();
    } catch (err) {
      if (this.active) report($("notice"), err);
    } finally {
      button.disabled = false;
      if (this.term && this.active) this.term.focus();
    }
  }

  async stop() {
    const button = $("btn-stop");
    button.disabled = true;
    this.notice("");
    try {
      const info = await api("DELETE", `${this.base}/session`);
      if (!this.active) return;
      this.showSession(info);
      // With a socket attached the `closed` frame updates the indicator.
      if (this.conn && !this.conn.open) this.conn.markStopped(info.exit_code);
    } catch (err) {
      if (this.active) report($("notice"), err);
    } finally {
      button.disabled = false;
    }
  }

  signal(name) {
    if (!this.conn || !this.conn.send({ type: "signal", signal: name })) {
      this.notice("The terminal is not connected.");
    }
    if (this.term) this.term.focus();
  }

  async refreshSession() {
    try {
      const info = await api("GET", `${this.base}/session`);
      if (this.active) this.showSession(info);
    } catch (err) {
      if (this.active && err instanceof ApiError && err.status !== 404) report($("notice"), err);
    }
  }

  showSession(info) {
    const state = info.state || "none";
    const badge = $("sd-state");
    badge.textContent = state;
    badge.dataset.state = state;
    $("sd-pid").textContent = info.pid ?? "–";
    $("sd-conversation").textContent =
      info.agent_session_id || (this.project && this.project.agent_session_id) || "–";
    $("sd-clients").textContent = info.clients ?? "–";
    $("sd-started").textContent = formatTime(info.started_at);
    $("sd-started").title = info.started_at || "";
    $("sd-exit").textContent = info.exit_code ?? "–";
  }

  // -- milestones

  setMilestoneFormEnabled(enabled) {
    for (const id of ["milestone-title", "milestone-context", "milestone-submit"]) {
      $(id).disabled = !enabled;
    }
  }

  milestonesMissing() {
    this.milestonesAvailable = false;
    $("milestones-unavailable").hidden = false;
    $("milestones-empty").hidden = true;
    this.setMilestoneFormEnabled(false);
    $("milestone-list").replaceChildren();
    this.milestoneRows.clear();
  }

  async refreshMilestones() {
    const query = `output_project_id=${encodeURIComponent(this.id)}&limit=200`;
    let body;
    try {
      body = await api("GET", `/api/milestones?${query}`);
    } catch (err) {
      if (!this.active) return;
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) {
        this.milestonesMissing();
      } else {
        report($("milestone-error"), err);
      }
      return;
    }
    if (!this.active) return;
    if (!this.milestonesAvailable) {
      this.milestonesAvailable = true;
      $("milestones-unavailable").hidden = true;
      this.setMilestoneFormEnabled(true);
    }
    this.renderMilestones((body && body.milestones) || []);
  }

  renderMilestones(milestones) {
    const list = $("milestone-list");
    $("milestones-empty").hidden = milestones.length > 0;
    const seen = new Set();
    milestones.forEach((milestone, index) => {
      seen.add(milestone.id);
      let row = this.milestoneRows.get(milestone.id);
      if (!row) {
        row = this.buildMilestone();
        this.milestoneRows.set(milestone.id, row);
      }
      this.updateMilestone(row, milestone);
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    for (const [id, row] of this.milestoneRows) {
      if (!seen.has(id)) {
        row.remove();
        this.milestoneRows.delete(id);
      }
    }
  }

  buildMilestone() {
    const row = el("li", "milestone");
    const head = el("div", "ms-head");
    const status = el("span", "badge status");
    const title = el("span", "ms-title");
    head.append(status, title);
    const reason = el("p", "ms-reason");
    const path = el("p", "ms-path mono small");
    const details = el("details", "ms-context");
    const summary = el("summary", null, "Context");
    const context = el("pre", "pre");
    details.append(summary, context);
    const actions = el("div", "ms-actions");
    const buttons = {};
    for (const [action, label, cls] of [
      ["start", "Start", "primary"],
      ["complete", "Complete", ""],
      ["fail", "Fail", ""],
      ["delete", "Delete", "danger"],
    ]) {
      const button = el("button", `small ${cls}`.trim(), label);
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", () => this.milestoneAction(row.milestone, action, button));
      actions.append(button);
      buttons[action] = button;
    }
    row.append(head, reason, path, details, actions);
    row.parts = { status, title, reason, path, details, context, buttons };
    return row;
  }

  updateMilestone(row, milestone) {
    row.milestone = milestone;
    row.dataset.milestoneId = milestone.id;
    row.dataset.status = milestone.status;
    const { status, title, reason, path, details, context, buttons } = row.parts;
    status.textContent = MILESTONE_STATUS_LABEL[milestone.status] || milestone.status;
    status.dataset.status = milestone.status;
    title.textContent = milestone.title;
    reason.textContent = milestone.status_reason || "";
    reason.hidden = !milestone.status_reason;
    path.textContent = milestone.context_path || "";
    path.hidden = !milestone.context_path;
    context.textContent = milestone.context || "";
    details.hidden = !milestone.context;
    const legal = {
      start: milestone.status === "pending",
      complete: milestone.status === "in_progress",
      fail: milestone.status === "in_progress",
      delete: milestone.status === "pending",
    };
    for (const [action, button] of Object.entries(buttons)) {
      if (!button.busy) button.disabled = !legal[action];
      button.setAttribute("aria-label", `${button.textContent} milestone ${milestone.title}`);
    }
  }

  async milestoneAction(milestone, action, button) {
    const error = $("milestone-error");
    error.textContent = "";
    const path = `/api/milestones/${encodeURIComponent(milestone.id)}`;
    if (action === "delete" && !window.confirm(`Delete milestone "${milestone.title}"?`)) return;
    button.busy = true;
    button.disabled = true;
    try {
      if (action === "delete") {
        await api("DELETE", path);
      } else {
        const result = await api("POST", `${path}/${action}`);
        if (action === "start" && result && result.status === "pending") {
          // The command could not be delivered: the milestone waits, and says why.
          const reason = result.status_reason || (result.delivery && result.delivery.reason);
          error.textContent = `Not started: ${reason || "the agent did not take the command"}`;
        }
      }
    } catch (err) {
      if (this.active) report(error, err);
    } finally {
      button.busy = false;
    }
    if (this.active) await this.refreshMilestones();
  }

  async createMilestone(event) {
    event.preventDefault();
    const error = $("milestone-error");
    error.textContent = "";
    const title = $("milestone-title").value.trim();
    const context = $("milestone-context").value;
    if (!title) {
      error.textContent = "Give the milestone a title.";
      $("milestone-title").focus();
      return;
    }
    const submit = $("milestone-submit");
    submit.disabled = true;
    try {
      await api("POST", "/api/milestones", { output_project_id: this.id, title, context });
      $("milestone-title").value = "";
      $("milestone-context").value = "";
    } catch (err) {
      if (!this.active) return;
      if (err instanceof ApiError && (err.status === 404 || err.status === 405) && !err.code) {
        this.milestonesMissing();
        return;
      }
      report(error, err);
    } finally {
      submit.disabled = !this.milestonesAvailable;
    }
    if (!this.active) return;
    await this.refreshMilestones();
    $("milestone-title").focus();
  }
}

// ---------------------------------------------------------------- wiring

/** A handler that runs `method` of the active page if it is a `Page` (forms never submit natively). */
function whenOn(Page, method) {
  return (event) => {
    event.preventDefault();
    if (page instanceof Page) page[method](event);
  };
}

function init() {
  $("signin-form").addEventListener("submit", signIn);
  setUpNotifyButton($("btn-notify"));
  $("create-form").addEventListener("submit", whenOn(ProjectsPage, "create"));
  $("milestone-form").addEventListener("submit", whenOn(ProjectPage, "createMilestone"));
  $("milestone-context").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("milestone-form").requestSubmit();
    }
  });
  $("btn-start").addEventListener("click", whenOn(ProjectPage, "start"));
  $("btn-stop").addEventListener("click", whenOn(ProjectPage, "stop"));
  $("btn-sigint").addEventListener("click", () => page instanceof ProjectPage && page.signal("SIGINT"));
  $("btn-eof").addEventListener("click", () => page instanceof ProjectPage && page.signal("EOF"));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && page && page.onVisible) page.onVisible();
  });
  window.addEventListener("hashchange", route);
  route();
}

init();
