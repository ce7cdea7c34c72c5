"""The one way commands reach an agent: typed into its terminal, or as its initial prompt.

Callers (the input API, milestones) name a project and a command; this
module starts the terminal session if needed, types through the session's
command queue (ready, paste, pause, Enter) or hands the command to the
agent as its initial prompt when this start launches it, and follows a
conversation that expired on the way: a command meant for a process that
exited because its conversation could not be resumed is typed into the
replacement rather than reported lost.

``send_confirmed`` (h12) also waits for the agent to confirm it got the
command (its prompt hook, or the echo for agents without hooks;
``service/confirmed_delivery.py``). Every path types through the session's
command queue, whose gate holds a command while the agent asks a question.
"""

from __future__ import annotations

import logging

from agentpty.domain.models import OutputProject
from agentpty.service.agent_state import AgentStateService
from agentpty.service.confirmed_delivery import Delivery, confirm_delivery
from agentpty.service.conversations import ConversationService
from agentpty.service.sessions import LiveTerminal, TerminalSessions
from agentpty.service.tasks import OwnedTasks
from agentpty.terminal.delivery import (
    DeliveryOutcome,
    DeliveryResult,
    output_quiet,
    watch_outcome,
)

__all__ = ["CommandDelivery"]

log = logging.getLogger(__name__)

#: An agent may record a new conversation, or the prompt in it, a moment
#: after the Enter (Codex: ~30 ms). A miss right after a command is retried
#: at this many later moments when the output pauses, then given up (the
#: exit looks again).
LEARN_RETRIES = 5
#: Seconds of quiet output that make such a moment.
LEARN_QUIET = 0.3
#: Longest wait for one such moment.
LEARN_WAIT = 60.0


class CommandDelivery:
    def __init__(
        self,
        sessions: TerminalSessions,
        conversations: ConversationService,
        *,
        states: AgentStateService | None = None,
        confirm_timeout: float = 15.0,
    ) -> None:
        self.sessions = sessions
        self.conversations = conversations
        #: The agent state, whose hook reports confirm typed prompts (None: echo only).
        self.states = states
        self.confirm_timeout = confirm_timeout
        #: Retries of learning an id after a command (``_learn_id``).
        self._tasks = OwnedTasks()

    async def close(self) -> None:
        """Cancel pending retries of learning ids."""
        await self._tasks.close()

    def has_hooks(self, agent: str) -> bool:
        """True when ``agent`` reports through hooks (its profile says so)."""
        profile = self.sessions.profiles.get(agent)
        return profile is not None and profile.hooks is not None

    async def send(
        self,
        project: OutputProject,
        text: str,
        *,
        submit: bool = True,
        as_initial_prompt: bool = False,
    ) -> DeliveryResult:
        """Deliver ``text`` into the project's terminal session, starting it if needed.

        ``as_initial_prompt``: if this call starts the process and the agent
        takes a first prompt on its command line (its profile says so),
        ``text`` is passed there instead of typed (the agent submits it
        itself); a running process gets it typed.
        """
        _, result, _ = await self._send(
            project, text, submit=submit, as_initial_prompt=as_initial_prompt
        )
        return result

    async def send_confirmed(
        self, project: OutputProject, text: str, *, as_initial_prompt: bool = False
    ) -> Delivery:
        """``send`` with Enter, then wait for the agent to confirm it got ``text``.

        Agents with hooks confirm with their prompt report (``states``); the
        others with the echo of the text on screen.
        """
        states = self.states

        async def typing() -> tuple[LiveTerminal, DeliveryResult, bool]:
            return await self._send(project, text, submit=True, as_initial_prompt=as_initial_prompt)

        return await confirm_delivery(
            states,
            project.id,
            text,
            typing,
            has_hooks=states is not None and self.has_hooks(project.agent),
            confirm_timeout=self.confirm_timeout,
        )

    async def _send(
        self, project: OutputProject, text: str, *, submit: bool, as_initial_prompt: bool
    ) -> tuple[LiveTerminal, DeliveryResult, bool]:
        """``send``; also returns the terminal session that got the text (a replacement, if
        any) and whether the text was typed (False: the agent's initial prompt)."""
        profile = self.sessions.profiles.get(project.agent)
        initial = (
            as_initial_prompt and submit and profile is not None and profile.takes_initial_prompt
        )
        live, started = await self.sessions.ensure(
            project, initial_prompt=text if initial else None
        )
        if initial and started:
            result = await self._watch_initial_prompt(live)
            # A replacement for an expired conversation starts without the prompt.
            result = await self._follow_expiry(live, result, text, submit=True)
        else:
            result = await self.deliver(live, text, submit=submit)
        if result.ok:
            await self._learn_id(project)
        final = self.sessions.current(project.id) or live
        return final, result, not (initial and started) or final is not live

    async def deliver(
        self, live: LiveTerminal, text: str, *, submit: bool = True
    ) -> DeliveryResult:
        """Type ``text`` into ``live``, or into the terminal session that replaced it."""
        result = await live.commands.deliver(text, submit=submit)
        return await self._follow_expiry(live, result, text, submit=submit)

    @staticmethod
    async def _follow_expiry(
        live: LiveTerminal, result: DeliveryResult, text: str, *, submit: bool
    ) -> DeliveryResult:
        """Type ``text`` again into ``live``'s replacement if ``result`` says it exited."""
        if result.outcome is not DeliveryOutcome.EXITED:
            return result
        successor = await live.successor  # resolved once the exit has been handled
        if successor is None:
            return result
        return await successor.commands.deliver(text, submit=submit)

    @staticmethod
    async def _watch_initial_prompt(live: LiveTerminal) -> DeliveryResult:
        """The agent submits its initial prompt itself: watch for a refusal or an exit."""
        policy = live.commands.policy
        rejected = await watch_outcome(
            live.terminal,
            policy.rejection_markers,
            policy.busy_markers,
            policy.rejection_window,
            after=policy.marker,
            timeout=policy.timeout,
        )
        if rejected is not None:
            return DeliveryResult(DeliveryOutcome.REJECTED, f"the agent answered {rejected!r}")
        if not live.terminal.alive:
            return DeliveryResult(DeliveryOutcome.EXITED, "the agent exited")
        return DeliveryResult(DeliveryOutcome.DELIVERED)

    async def _learn_id(self, project: OutputProject) -> None:
        """After a delivered command: learn the conversation's id and confirm it holds messages.

        The id of an agent that chooses its own is read from its files;
        then the conversation is confirmed from them, so that its loss is
        later noticed (expired) even if this process never exits cleanly.
        The agent may write them a moment later: a miss is retried in the
        background when the output next pauses (``LEARN_RETRIES`` times).
        """
        live = self.sessions.current(project.id)
        if live is None or self.conversations.support(project.agent) is None:
            return
        if not await self._learnt(project, live):
            self._tasks.spawn(self._learn_id_later(project, live), f"learn id {project.id}")

    async def _learnt(self, project: OutputProject, live: LiveTerminal) -> bool:
        """True once ``live``'s conversation id is known and confirmed."""
        found = live.conversation_id
        if found is None:
            found = await self.conversations.discover(project, live.terminal.started_at)
        if found is None:
            return False
        return await self.conversations.confirm_if_exists(project, found)

    async def _learn_id_later(self, project: OutputProject, live: LiveTerminal) -> None:
        for _ in range(LEARN_RETRIES):
            if not await output_quiet(live.terminal, LEARN_QUIET, LEARN_WAIT):
                return  # exited (the exit handler looks again) or silent for long
            if await self._learnt(project, live):
                return
        log.info("project %s: conversation not found or empty after a command", project.id)
