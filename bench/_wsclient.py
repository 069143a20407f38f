"""A Streamlit session over the app's own websocket, without a browser: what the browser's
Streamlit client sends (BackMsg protobufs) and reads (ForwardMsg protobufs), for benches that need
many users at once on a 2-core machine (20 Chromium tabs would take the CPU from the server).

It keeps, per script run, the elements the server sent (by delta path), the query string the app
set (sent back on every rerun, as the browser does with its URL), and every text it ever
received (to catch one user's data on another user's page). Widgets are found by type and label.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

# Element kinds whose text a user reads, and the field that holds it.
TEXT_FIELDS = {"markdown": "body", "heading": "body", "text": "body", "alert": "body", "code": "code_text",
               "button": "label", "text_input": "label", "chat_input": "placeholder", "toast": "body"}


class SessionError(RuntimeError):
    """The server closed the connection, or a run did not finish in time."""


@dataclass
class StreamlitSession:
    url: str                                   # http://host:port
    elements: dict[tuple, object] = field(default_factory=dict)   # this run's elements by delta path
    texts_seen: list[str] = field(default_factory=list)           # every text received, ever
    query_string: str = ""
    runs_finished: int = 0
    exceptions: list[str] = field(default_factory=list)           # st.exception elements received
    _ws: object = None
    _reader: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _running: bool = False

    async def connect(self) -> None:
        """Open the websocket and run the app's script once (what loading the page does)."""
        self._ws = await websockets.connect(self.url.replace("http", "ws", 1) + "/_stcore/stream",
                                            subprotocols=["streamlit"], max_size=None,
                                            open_timeout=120, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        await self.rerun([])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def rerun(self, widget_states: list) -> None:
        """Send a rerun with these widget states (what a widget interaction sends)."""
        msg = BackMsg()
        msg.rerun_script.query_string = self.query_string
        for state in widget_states:
            msg.rerun_script.widget_states.widgets.append(state)
        self._running = True
        await self._ws.send(msg.SerializeToString())

    async def wait_for(self, condition, timeout: float) -> float:
        """Wait until condition(self) holds; return the perf_counter time it was seen."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if self._reader.done():
                raise SessionError(f"the connection closed: {self._reader.exception() or 'by the server'}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SessionError(f"no change within {timeout:.0f} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return time.perf_counter()

    async def idle(self, timeout: float = 120) -> None:
        """Wait until no script run is going on (a run's st.rerun starts another)."""
        await self.wait_for(lambda s: not s._running, timeout)

    # What the page shows --------------------------------------------------------------------

    def find(self, kind: str, label: str):
        """This run's element of `kind` (e.g. "text_input") whose label (or placeholder) is `label`."""
        for element in self.elements.values():
            if element.WhichOneof("type") == kind:
                proto = getattr(element, kind)
                if getattr(proto, "label", None) == label or getattr(proto, "placeholder", None) == label:
                    return proto
        return None

    def of_kind(self, kind: str) -> list:
        return [getattr(e, kind) for e in self.elements.values() if e.WhichOneof("type") == kind]

    def markdown(self) -> list[str]:
        return [m.body for m in self.of_kind("markdown")]

    # Reading ----------------------------------------------------------------------------------

    async def _read(self) -> None:
        async for data in self._ws:
            msg = ForwardMsg()
            msg.ParseFromString(data)
            self._handle(msg)
            self._changed.set()

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":          # a script run starts: its elements replace the last run's
            self.elements = {}
            self._running = True
        elif kind == "script_finished":
            self.runs_finished += 1
            # FINISHED_EARLY_FOR_RERUN: st.rerun() or a newer interaction; another run follows.
            if msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                self._running = False
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            self.elements[tuple(msg.metadata.delta_path)] = element
            element_kind = element.WhichOneof("type")
            if element_kind == "exception":
                self.exceptions.append(element.exception.message)
            if element_kind in TEXT_FIELDS:
                self.texts_seen.append(getattr(getattr(element, element_kind), TEXT_FIELDS[element_kind]))
        elif kind == "delta" and msg.delta.WhichOneof("type") == "add_block":
            block = msg.delta.add_block
            for part in ("expandable", "chat_message", "popover"):
                if block.WhichOneof("type") == part:
                    self.texts_seen.append(getattr(getattr(block, part), "label", "")
                                           or getattr(getattr(block, part), "name", ""))


def text_state(proto, value: str) -> WidgetState:
    """A text input holding `value`."""
    return WidgetState(id=proto.id, string_value=value)


def trigger_state(proto) -> WidgetState:
    """A button (or a form's submit button) clicked."""
    return WidgetState(id=proto.id, trigger_value=True)


def chat_state(proto, text: str) -> WidgetState:
    """A chat input sent with `text`."""
    state = WidgetState(id=proto.id)
    state.chat_input_value.data = text
    return state
