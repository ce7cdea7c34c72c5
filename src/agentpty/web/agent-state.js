// Agent state in the web UI: one server-sent-events stream (/api/events) for
// every project, a badge readable without colour (a shape and a word), the
// count of projects that need the user in the page title, and a browser
// notification when a project needs input or finishes a turn while this tab
// is hidden (only once the user allowed notifications with the bell button).

const LABEL = Object.freeze({
  starting: "starting",
  working: "working",
  needs_input: "needs input",
  idle: "idle",
  exited: "exited",
  unknown: "unknown",
});

// Shapes tell the states apart without colour: ring, play, triangle, circle, square, question.
const SHAPE = Object.freeze({
  starting: "◌",
  working: "▶",
  needs_input: "▲",
  idle: "●",
  exited: "■",
  unknown: "?",
});

/** Words for a state, with what the agent asks or how it exited. */
export function describeState(info) {
  const state = (info && info.agent_state) || "unknown";
  let text = LABEL[state] || state;
  const question = info && info.question;
  const detail = (info && info.state_detail) || {};
  if (state === "needs_input" && question && question.tool) {
    text += `: ${question.tool}${question.detail ? ` ${question.detail}` : ""}`;
  } else if (state === "exited" && detail.exit_code !== undefined && detail.exit_code !== null) {
    text += ` (${detail.exit_code})`;
  }
  return text;
}

/** Fill ``badge`` (a span) with the state's shape and words; data-state drives the colour. */
export function renderBadge(badge, info) {
  const state = (info && info.agent_state) || "unknown";
  const shape = document.createElement("span");
  shape.className = "shape";
  shape.setAttribute("aria-hidden", "true");
  shape.textContent = SHAPE[state] || "?";
  const words = document.createElement("span");
  words.className = "words";
  words.textContent = LABEL[state] || state;
  badge.replaceChildren(shape, words);
  badge.dataset.agentState = state;
  badge.title = `agent: ${describeState(info)}`;
  badge.setAttribute("aria-label", `agent ${describeState(info)}`);
}

/** The stream of every project's state; ``onChange(projectId, info)`` after each change. */
export class AgentStates {
  constructor() {
    this.byProject = new Map(); // id -> {agent_state, question, state_detail, name}
    this.listeners = new Set();
    this.baseTitle = "agentpty";
    this.source = null;
  }

  start() {
    if (this.source) return;
    // Same origin: the sign-in cookie authenticates; the browser resumes with Last-Event-ID.
    this.source = new EventSource("/api/events");
    this.source.addEventListener("state", (event) => this.onState(JSON.parse(event.data)));
    this.source.addEventListener("resync", () => this.reload());
    this.source.onerror = () => {
      if (this.source && this.source.readyState === EventSource.CLOSED) {
        this.source = null; // e.g. signed out; start() again after sign-in
      }
    };
    this.reload();
  }

  async reload() {
    let body;
    try {
      const response = await fetch("/api/output-projects?limit=1000", { credentials: "same-origin" });
      if (!response.ok) return;
      body = await response.json();
    } catch {
      return;
    }
    for (const project of body.output_projects || []) this.remember(project.id, project);
    this.renderTitle();
  }

  /** Take a project's state from a REST answer (list or page). */
  remember(projectId, info) {
    const known = this.byProject.get(projectId) || {};
    this.byProject.set(projectId, { ...known, ...pick(info) });
    this.renderTitle();
  }

  onState(event) {
    const before = this.byProject.get(event.project_id) || {};
    const after = { ...before, ...pick(event) };
    this.byProject.set(event.project_id, after);
    this.renderTitle();
    this.maybeNotify(event.project_id, before, after);
    for (const listener of this.listeners) listener(event.project_id, after);
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  needingInput() {
    let count = 0;
    for (const info of this.byProject.values()) if (info.agent_state === "needs_input") count++;
    return count;
  }

  setBaseTitle(title) {
    this.baseTitle = title;
    this.renderTitle();
  }

  renderTitle() {
    const count = this.needingInput();
    document.title = count ? `(${count} need${count === 1 ? "s" : ""} input) ${this.baseTitle}` : this.baseTitle;
  }

  maybeNotify(projectId, before, after) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") {
      return;
    }
    const name = after.name || "a project";
    if (after.agent_state === "needs_input" && before.agent_state !== "needs_input") {
      new Notification(`${name} needs input`, { body: describeState(after), tag: `agentpty-${projectId}` });
    } else if (after.agent_state === "idle" && ["working", "needs_input"].includes(before.agent_state)) {
      new Notification(`${name} finished its turn`, { body: "The agent waits at its prompt.", tag: `agentpty-${projectId}` });
    }
  }
}

function pick(info) {
  const out = {};
  for (const key of ["agent_state", "state_since", "state_detail", "question", "name"]) {
    if (info[key] !== undefined) out[key] = info[key];
  }
  return out;
}

/** The bell button: asks for notification permission on a click (browsers require a gesture). */
export function setUpNotifyButton(button) {
  if (!("Notification" in window)) {
    button.hidden = true;
    return;
  }
  const show = () => {
    const allowed = Notification.permission === "granted";
    button.setAttribute("aria-pressed", String(allowed));
    button.textContent = allowed ? "🔔 Notifications on" : "🔕 Notify me";
    button.disabled = Notification.permission === "denied";
    button.title =
      Notification.permission === "denied"
        ? "Notifications are blocked for this site in the browser's settings"
        : "Tell me when a project needs input or finishes its turn while this tab is hidden";
  };
  button.addEventListener("click", async () => {
    if (Notification.permission === "default") await Notification.requestPermission();
    show();
  });
  show();
}
