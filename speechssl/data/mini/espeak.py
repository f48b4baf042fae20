"""A small ctypes binding to libespeak-ng: synthesis into memory, with phoneme and word events.

Only what the mini corpus needs: initialise once per process in synchronous retrieval mode with
phoneme events (optionally IPA names), select a voice (``"en-us+f3"``: language voice + variant),
set rate / volume / pitch / pitch range, synthesise UTF-8 text into int16 samples at the engine's
rate (22050 Hz) together with the events espeak-ng reports while synthesising, and list voices.

The structures mirror ``espeak-ng/speak_lib.h`` (API revision 12, espeak-ng 1.49-1.52):

* ``espeak_EVENT`` (40 bytes on LP64): ``int type; unsigned int unique_identifier; int
  text_position; int length; int audio_position; int sample; void *user_data;`` then a union
  ``{int number; const char *name; char string[8];}`` at offset 32. ``text_position`` counts
  characters from 1; ``sample`` is the output sample where the event happens, counted from the
  start of the ``espeak_Synth`` call; a phoneme event's name is in ``string`` (UTF-8, NUL-terminated
  unless it needs all 8 bytes).
* ``espeak_VOICE``: ``const char *name, *languages, *identifier; unsigned char gender, age,
  variant, xx1; int score; void *spare;``.

libespeak-ng keeps global state and is neither thread safe nor re-entrant: use one :class:`Espeak`
per process (:func:`get_espeak`) and parallelise with processes. Its synthesiser also carries
state from one utterance to the next (pitch flutter phase, gain control), so the same call gives
slightly different samples depending on what the process synthesised before; callers that need
reproducible audio synthesise a fixed sequence of utterances in a fresh process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field

import numpy as np

# espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() when the data folder is missing
# espeak_Synth flags and position type
CHARS_UTF8 = 1
ENDPAUSE = 0x1000
POS_CHARACTER = 1
# espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_MARK = 3
EVENT_PLAY = 4
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
EVENT_SAMPLERATE = 8
# espeak_PARAMETER
PARAM_RATE = 1  # words per minute, 80-450 (175 normal)
PARAM_VOLUME = 2  # 0-200 (100 normal; louder compresses)
PARAM_PITCH = 3  # 0-100 (50 normal): the voice's base pitch scaled from 0.5x to 2x
PARAM_RANGE = 4  # 0-100 (50 normal): 0 is monotone
# espeak_ERROR
EE_OK = 0

RATE_MIN, RATE_MAX = 80, 450

_EVENT_KINDS = {
    EVENT_WORD: "word",
    EVENT_SENTENCE: "sentence",
    EVENT_MARK: "mark",
    EVENT_PLAY: "play",
    EVENT_END: "end",
    EVENT_MSG_TERMINATED: "msg_terminated",
    EVENT_PHONEME: "phoneme",
}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # char *: read as raw memory (priority bytes inside)
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakError(RuntimeError):
    """libespeak-ng failed. (A missing library or data folder raises ``FileNotFoundError``.)"""


@dataclass(frozen=True)
class SynthEvent:
    """One event reported during synthesis.

    ``kind``: "word", "phoneme", "sentence", "end", ...; ``sample``: output sample (engine rate) where
    it happens; ``text_position``: 1-based character position in the text (0 when not tied to it);
    ``length``: word length in characters (word events); ``name``: the phoneme (phoneme events).
    """

    kind: str
    sample: int
    text_position: int = 0
    length: int = 0
    name: str = ""


@dataclass
class Synthesis:
    """Samples (int16, mono, at ``sample_rate``) and the events of one ``espeak_Synth`` call."""

    samples: np.ndarray
    sample_rate: int
    events: list[SynthEvent] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


@dataclass(frozen=True)
class VoiceInfo:
    """A voice or variant as ``espeak_ListVoices`` reports it (gender "m", "f" or "" if unset)."""

    name: str
    identifier: str
    gender: str
    age: int
    languages: tuple[str, ...]


def _load_library() -> ctypes.CDLL:
    candidates = [ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.dylib"]
    errors = []
    for name in candidates:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise FileNotFoundError(
        "libespeak-ng not found (install espeak-ng, e.g. 'apt-get install espeak-ng'); tried: "
        + ("; ".join(errors) or ", ".join(c for c in candidates if c))
    )


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_GetParameter.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.espeak_GetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,  # text
        ctypes.c_size_t,  # size
        ctypes.c_uint,  # position
        ctypes.c_int,  # position_type
        ctypes.c_uint,  # end_position
        ctypes.c_uint,  # flags
        ctypes.POINTER(ctypes.c_uint),  # unique_identifier
        ctypes.c_void_p,  # user_data
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p


def _parse_languages(ptr: int) -> tuple[str, ...]:
    # a list of (priority byte, NUL-terminated name), ended by an extra NUL
    out = []
    offset = 0
    while True:
        priority = ctypes.string_at(ptr + offset, 1)
        if priority == b"\0":
            break
        name = ctypes.string_at(ptr + offset + 1)
        out.append(name.decode("utf-8", "replace"))
        offset += 2 + len(name)
    return tuple(out)


class Espeak:
    """libespeak-ng, initialised once, synthesising into memory. Use :func:`get_espeak`.

    ``ipa=True`` makes phoneme events carry IPA names (``"ʃ"``, ``"aɪ"``) instead of espeak's ASCII
    mnemonics (``"S"``, ``"aI"``); pauses have an empty name either way in IPA mode.
    """

    def __init__(self, *, ipa: bool = True, data_path: str | None = None, buffer_ms: int = 200):
        self._lib = _load_library()
        _declare(self._lib)
        options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT | (INITIALIZE_PHONEME_IPA if ipa else 0)
        path = data_path.encode() if data_path else None
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, buffer_ms, path, options)
        if rate <= 0:
            where = data_path or "the default location"
            raise FileNotFoundError(f"espeak_Initialize failed (returned {rate}): no espeak-ng-data in {where}?")
        self.sample_rate = int(rate)
        self.ipa = ipa
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._events: list[SynthEvent] = []
        self._callback = _SYNTH_CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    # --- the callback: copy samples and events out of espeak's buffers -------------------------
    def _on_synth(self, wav, num_samples: int, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * ctypes.sizeof(ctypes.c_short)))
        if events:
            i = 0
            while events[i].type != EVENT_LIST_TERMINATED:
                ev = events[i]
                kind = _EVENT_KINDS.get(ev.type)
                if kind is not None:
                    name = ""
                    if ev.type == EVENT_PHONEME:
                        # c_char * 8 reads up to the first NUL (or all 8 bytes); a name cut inside a
                        # multi-byte character loses that character
                        name = ev.id.string.decode("utf-8", "ignore")
                    self._events.append(SynthEvent(kind, int(ev.sample), int(ev.text_position), int(ev.length), name))
                i += 1
        return 0  # continue

    # --- public API ------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self._lib.espeak_Info(None).decode()

    def set_voice(self, name: str) -> None:
        """Select a voice by name, e.g. ``"en-us"``, ``"de"`` or ``"fr-fr+f3"`` (language + variant)."""
        with self._lock:
            err = self._lib.espeak_SetVoiceByName(name.encode("utf-8"))
        if err != EE_OK:
            raise ValueError(f"espeak-ng has no voice '{name}' (error {err}); see 'espeak-ng --voices'")

    def set_prosody(self, *, rate: int, volume: int, pitch: int, pitch_range: int) -> None:
        """Absolute rate (words/min, 80-450), volume (0-200), pitch (0-100) and pitch range (0-100)."""
        values = {
            PARAM_RATE: min(max(int(rate), RATE_MIN), RATE_MAX),
            PARAM_VOLUME: min(max(int(volume), 0), 200),
            PARAM_PITCH: min(max(int(pitch), 0), 100),
            PARAM_RANGE: min(max(int(pitch_range), 0), 100),
        }
        with self._lock:
            for param, value in values.items():
                err = self._lib.espeak_SetParameter(param, value, 0)
                if err != EE_OK:
                    raise EspeakError(f"espeak_SetParameter({param}, {value}) failed (error {err})")

    def get_parameter(self, param: int) -> int:
        with self._lock:
            return int(self._lib.espeak_GetParameter(param, 1))

    def synthesize(self, text: str, *, end_pause: bool = True) -> Synthesis:
        """Speak UTF-8 ``text`` with the current voice and prosody; returns samples and events."""
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)  # NUL-terminated
        flags = CHARS_UTF8 | (ENDPAUSE if end_pause else 0)
        with self._lock:
            self._chunks, self._events = [], []
            err = self._lib.espeak_Synth(buf, len(data) + 1, 0, POS_CHARACTER, 0, flags, None, None)
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        if err != EE_OK:
            raise EspeakError(f"espeak_Synth failed (error {err}) for text {text[:60]!r}")
        samples = np.frombuffer(b"".join(chunks), dtype=np.int16).copy()
        return Synthesis(samples=samples, sample_rate=self.sample_rate, events=events)

    def list_voices(self, language: str | None = None) -> list[VoiceInfo]:
        """Voices for ``language`` (``"variant"`` lists the variants, as ``espeak-ng --voices=variant``);
        ``None`` lists every language voice (not the variants)."""
        spec = None
        lang_buf = None
        if language is not None:
            lang_buf = ctypes.create_string_buffer(language.encode("utf-8"))
            spec = ctypes.pointer(_Voice(languages=ctypes.cast(lang_buf, ctypes.c_void_p)))
        with self._lock:
            arr = self._lib.espeak_ListVoices(spec)
        out = []
        i = 0
        while arr and arr[i]:
            v = arr[i].contents
            langs = _parse_languages(v.languages) if v.languages else ()
            gender = {1: "m", 2: "f"}.get(v.gender, "")
            out.append(
                VoiceInfo(
                    name=(v.name or b"").decode("utf-8", "replace"),
                    identifier=(v.identifier or b"").decode("utf-8", "replace"),
                    gender=gender,
                    age=int(v.age),
                    languages=langs,
                )
            )
            i += 1
        del lang_buf  # kept alive until espeak_ListVoices has read it
        return out


_ENGINE: Espeak | None = None


def get_espeak(*, ipa: bool = True) -> Espeak:
    """This process's engine, initialised on first use.

    libespeak-ng is initialised at most once per process (re-initialising it can hang); a child
    forked from an initialised process keeps using the inherited engine (synchronous mode runs no
    threads, so the copy is usable).
    """
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak(ipa=ipa)
    elif _ENGINE.ipa != ipa:
        raise EspeakError(f"libespeak-ng is already initialised in this process with ipa={_ENGINE.ipa}")
    return _ENGINE
