"""What a tab is shown of its session besides the streamed lines: the status line, the model
picker, the pull panel, and the whole snapshot a tab that (re)connects starts from."""
from fasthtml.common import to_xml

from shared.config import Settings
from shared.messages import full_name
from web.components import BrainStatus, Bubble, ModelPicker, PullPanel, Transcript
from web.ports import Brains
from web.pulls import Pulls
from web.sessions import Sessions


class Views:
    def __init__(self, settings: Settings, sessions: Sessions, brains: Brains, pulls: Pulls):
        self.settings, self.sessions, self.brains, self.pulls = settings, sessions, brains, pulls

    def status_line(self, sid: str):
        return BrainStatus(*self.brains.status_of(sid, self.sessions.get(sid).model))

    def picker(self, sid: str):
        return ModelPicker(self.brains.models, self.sessions.get(sid).model or self.settings.model)

    def pull_panel(self, sid: str):
        "The offer to pull the session's model while Ollama lists it as not pulled, and the session's pulls."
        model, models = self.sessions.get(sid).model or self.settings.model, self.brains.models
        missing = models is not None and full_name(model) not in models and not self.pulls.pulling(model)
        return PullPanel(model if missing else None, self.pulls.of(sid))

    def bubbles(self, sid: str) -> list:
        return [Bubble(line) for line in self.sessions.get(sid).lines.values()]

    def snapshot(self, sid: str) -> str:
        "Everything a tab that (re)connects needs: the transcript, the status line, the picker, the pulls."
        return (to_xml(Transcript(self.bubbles(sid))) + to_xml(self.status_line(sid)) + to_xml(self.picker(sid))
                + to_xml(self.pull_panel(sid)))

    def model_chosen(self, sid: str) -> str:
        "What depends on the session's model: the picker, the status line, the pull offer."
        return to_xml(self.picker(sid)) + to_xml(self.status_line(sid)) + to_xml(self.pull_panel(sid))
