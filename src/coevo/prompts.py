"""Task-aware prompts, and the cleaning that turns a raw LLM answer into an interpretation.

All wording the LLM sees lives here, so it is easy to read and change. The
instructions ask for a short *phrase*, not a sentence: sentence-style answers
("The user is asking about ...") share boilerplate that dominates their
embeddings and drowns the part that tells texts apart (docs/method.md, step 1).
"""

from __future__ import annotations

import re

from .guards import echoes_prompt, leaks_prompt

_PHRASE_RULES = "Output only the phrase: no sentence, no explanation."

# Measured on the demo data with Qwen2.5-Coder-0.5B: asking for "2 to 6 plain
# lowercase words" gave one-word generic answers ("request", "send"); giving
# an example phrase made the model repeat the example for unrelated texts;
# asking for the action *and* what it concerns gave specific phrases
# ("reset link expired", "parcel delivery to different address").
TASK_INSTRUCTIONS: dict[str, str] = {
    "intent": (
        "Summarize what the user wants in a short phrase of 3 to 8 words "
        "that names both the action and the thing it concerns."
    ),
    "type": (
        "The text ends by naming a relation, an entity or an event. "
        "Name its type as a general category in a short phrase of 1 to 5 words."
    ),
    "topic": "Name the topic of the text, its subject area or field, in a short phrase of 2 to 6 words.",
    "emotion": "Name the emotion the writer of the text expresses, in a short phrase of 1 to 4 words.",
    "domain": "Name the broad domain of the user message, the area of life or service it belongs to, in 1 to 4 words.",
}


def system_prompt(task: str, instruction: str | None = None) -> str:
    """The system message for ``task``; a user ``instruction`` replaces the task's own sentence."""
    head = instruction.strip() if instruction else TASK_INSTRUCTIONS[task]
    return f"{head} {_PHRASE_RULES}"


# Naming a cluster (after the last round): what the group's texts are and what its
# name should say, per task. The request shows the cluster's most central
# interpretations and texts, so the name speaks the same language as both.
# Measured on the demo with Qwen2.5-Coder-0.5B (greedy): describing the message
# ("The message shows summaries and examples ... Name the group") made it answer
# the phrase rules themselves ("no sentence, no explanation") for 10 of 10
# clusters; giving it the role ("You name groups of ...") and asking to
# summarize gave a name for every cluster ("update shipping address").
_NAME_GROUPS: dict[str, tuple[str, str]] = {
    "intent": ("customer messages", "what the customers of the group want"),
    "type": ("texts that each end by naming a relation, an entity or an event", "the type the group shares"),
    "topic": ("texts", "the topic the texts of the group share"),
    "emotion": ("texts", "the emotion the writers of the group share"),
    "domain": ("user messages", "the domain the messages of the group belong to"),
}
NAME_MAX_EXAMPLE_CHARS = 300


def name_instruction(task: str) -> str:
    """The instruction that asks for a cluster's name; ``system_prompt`` adds the phrase rules."""
    group, what = _NAME_GROUPS[task]
    return f"You name groups of {group}. Summarize {what} in a short phrase of 2 to 5 words."


def name_request(interpretations: list[str], examples: list[str]) -> str:
    """The user message of a naming request: central interpretations, then central texts (cut short)."""
    lines = [f"Summaries: {'; '.join(interpretations)}"] if interpretations else []
    lines.append("Examples:")
    lines += [f"- {' '.join(text.split())[:NAME_MAX_EXAMPLE_CHARS]}" for text in examples]
    return "\n".join(lines)


MAX_TEXT_TOKENS = 512
"""The most tokens of a text that the LLM reads; longer texts lose their end.

Uncut, one 5 MB line made the prefill ask for 24 GB. 512 tokens hold a long
paragraph, more than any text of the benchmark datasets, so ordinary inputs
are never cut, and a text's first paragraph says what it is about.
"""

CHARS_PER_TOKEN = 64
"""More characters than any tokenizer's tokens average. A text is first cut to
this many characters per token of its budget, so that a huge text is never
tokenised whole (5 MB took 5 s and 700 MB) only to be cut afterwards."""


def cut_to_tokens(text: str, tokenizer, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut to its first ``max_tokens`` tokens, and whether anything was cut.

    Cutting the text itself, not the prompt built around it, keeps the
    instructions and the chat template's end whole.
    """
    head = text[: max_tokens * CHARS_PER_TOKEN]
    ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return head, len(head) < len(text)
    return tokenizer.decode(ids[:max_tokens]), True


def cut_texts(texts: list[str], tokenizer, max_tokens: int = MAX_TEXT_TOKENS) -> tuple[list[str], int]:
    """Every text within ``max_tokens`` tokens, and how many had to be cut.

    A token holds at least one byte, so a text of no more bytes than the
    budget is left alone without tokenising it: that is nearly every text.
    """
    out, cut = [], 0
    for text in texts:
        if len(text) > max_tokens // 4 and len(text.encode("utf-8")) > max_tokens:
            text, was_cut = cut_to_tokens(text, tokenizer, max_tokens)
            cut += was_cut
        out.append(text)
    return out, cut


def chat_messages(text: str, task: str, instruction: str | None = None) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_prompt(task, instruction)},
        {"role": "user", "content": text},
    ]


# --- cleaning ---------------------------------------------------------------

_LABEL_PREFIX = re.compile(
    r"^\s*(?:[-*#>\d.)]+\s*)?(?:the\s+)?(?:answer|intent|topic|emotion|domain|type|label|category|"
    r"relation(?:\s+type)?|entity(?:\s+type)?|event(?:\s+type)?|phrase|output|response)\s*[:=\-–]\s*",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(
    r"^(?:the\s+)?(?:user(?:'s)?|writer(?:'s)?|customer(?:'s)?|text|message|author(?:'s)?|speaker(?:'s)?|"
    r"person(?:'s)?|request)\s+"
    r"(?:is\s+|are\s+)?(?:asking|wants|wanting|would\s+like|needs|requests|requesting|seeking|trying|"
    r"looking|inquiring|expresses|expressing|feels|feeling|talks|talking|mentions|is|intent\s+is|"
    r"emotion\s+is|topic\s+is|domain\s+is)?\s*(?:to\s+know\s+|to\s+)?(?:about\s+|for\s+|regarding\s+|of\s+)?",
    re.IGNORECASE,
)
_THIS_IS = re.compile(r"^(?:this|it)\s+(?:text\s+|message\s+)?(?:is\s+)?(?:about\s+|regarding\s+)?", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# A reply to a text that is a yes/no question ("Is it legal to ...?" -> "yes, it is") instead of a name
# for what it asks about. The reply word goes; an answer that was nothing but the reply is emptied.
_REPLY = re.compile(r"^(?:yes|no)\b(?P<sep>[\s,.;:!]*)")  # no hyphen: "no-code tools" is a name
_REPLY_REST = re.compile(
    r"(?:(?:it|there|i|you|we|they|that|this)\s+"
    r"(?:is|are|does|do|can|could|was|were|will|would|has|have|should)(?:n?'t|\s+not)?)?"
)
# A clause of the phrase rules themselves, tacked onto an answer ("album no sentence", "card
# malfunction, no explanation"); only where a clause ends, so "ordering with no explanation for
# the delay" keeps its words.
_RULE_CLAUSE = re.compile(r"(?:^|[\s,.;:]+)(?:no|not|none|without(?:\s+an?)?)\s+(?:sentence|explanation)s?(?=$|\s*[,.;:])")
_QUOTES = "\"'`*“”‘’«»"


def clean_interpretation(raw: str) -> str:
    """First line only, no label prefix, no "The user is asking about", no quotes.

    CamelCase and snake_case labels ("OrderStatus", "order_status"), which the
    Coder models like to write, become plain words so they embed like words.
    A leading "yes"/"no" is a reply to a question, not an interpretation of it: "yes, esperanto"
    keeps "esperanto", and "yes" or "yes, it is" leave nothing. The 0.5B answered 6% of
    StackExchange's titles with a bare "yes", and DPO raised that to 10% in round 2, since one
    string shared by many texts is dense (docs/results/README.md, reply-cpu). "no emotion" is kept.
    A clause of the phrase rules goes too: "album no sentence" is "album", and "no sentence,
    explanation", which DPO raised from 5 to 10 of StackExchange's round-2 answers, is
    "explanation", an echo that ``is_degenerate`` drops.
    Returns "" for an answer with nothing left; callers treat that as degenerate.
    """
    line = raw.strip().split("\n", 1)[0].strip()
    for _ in range(2):  # a prefix may hide behind another ("Answer: Intent: ...")
        line = _LABEL_PREFIX.sub("", line).strip().strip(_QUOTES).strip()
    line = _BOILERPLATE.sub("", line, count=1).strip()
    line = _THIS_IS.sub("", line, count=1).strip()
    line = _CAMEL.sub(" ", line).replace("_", " ")
    line = line.strip(_QUOTES + " .,;:!?-–()[]{}")
    line = re.sub(r"\s+", " ", line).lower()
    line = _RULE_CLAUSE.sub("", line).strip(" .,;:!?-")
    reply = _REPLY.match(line)
    if reply:
        rest = line[reply.end():].strip(" .,;:!?")
        if _REPLY_REST.fullmatch(rest):
            return ""
        if reply["sep"].strip():
            line = rest
    return line


_REFUSAL = re.compile(r"^(?:i\s+apologi[sz]e|i'?m\s+sorry|sorry\b|i\s+can(?:'?t|not)\b|as\s+an\s+ai\b|unfortunately\b)")


def is_degenerate(interpretation: str, prompt: str | None = None, max_words: int = 16, *,
                  task_sentence: str | None = None) -> bool:
    """Not an interpretation: empty, punctuation only, rambling beyond a phrase, a
    refusal, only words of the phrase rules ("no sentence") or of the task's own sentence
    ("event"), or a repeat of four words in a row of the instructions (``prompt``).
    Resampled once, then dropped.

    Measured on Bank77 with Qwen2.5-Coder-0.5B: 8.8% of raw answers repeated the
    instruction ("no sentence, no explanation") and some refused; identical strings
    for unrelated texts pull those texts into one cluster. The shorter echo "no sentence"
    slipped past the four-word test: 15% of the 0.5B's answers to the type task on
    FewEvent and FewRel (docs/results/README.md, echo-cpu, measures the rule).
    ``task_sentence``, coevo's own instruction for the task when it is the one asked, is
    checked the same way: an answer that is nothing but a run of its words names the
    question, not the text. "event", "relation", "entity" and "general category" were 53 to
    61% of the 1.5B's round-1 answers on FewEvent and FewRel and 7 to 8% of the 0.5B's;
    "message" and "service" were 9% of the 0.5B's on CLINC(D) (echo-task-cpu measures the
    rule). An answer that only contains such a word ("sports event") is kept, and a user's
    instruction is never passed: it may list the answers it wants.
    """
    words = interpretation.split()
    if not words or not re.search(r"[a-z]", interpretation):
        return True
    if len(words) > max_words or _REFUSAL.match(interpretation):
        return True
    if echoes_prompt(interpretation, _PHRASE_RULES):
        return True
    if task_sentence is not None and echoes_prompt(interpretation, task_sentence):
        return True
    return prompt is not None and leaks_prompt(interpretation, prompt)
