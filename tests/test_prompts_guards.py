import pytest

from coevo.guards import GuardStats, copy_share, guard_stats, guard_violations, leaks_prompt
from coevo.prompts import TASK_INSTRUCTIONS, chat_messages, clean_interpretation, is_degenerate, system_prompt


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Intent: OrderStatus", "order status"),
        ("The user is asking about when the new card will arrive.", "when the new card will arrive"),
        ('"card_arrival"\nsecond line', "card arrival"),
        ("Answer: The user wants to reset password", "reset password"),
        ("**Topic:** quantum physics.", "quantum physics"),
        ("This text is about machine learning", "machine learning"),
        ("  joy  ", "joy"),
        ("Yes, esperanto", "esperanto"),  # a reply to a yes/no question loses the reply word
        ("Yes.", ""),
        ("yes, it is", ""),
        ("No, you can't", ""),
        ("no emotion", "no emotion"),  # "no" heading a name, not a reply
        ("yesterday's news", "yesterday's news"),
        ("no-code tools", "no-code tools"),
        ("album no sentence", "album"),  # a clause of the phrase rules is cut where a clause ends
        ("Card malfunction, no explanation.", "card malfunction"),
        ("identity proof without an explanation", "identity proof"),
        ("ordering with no explanation for the delay", "ordering with no explanation for the delay"),
        ("no card, no explanation", "no card"),
        ("yes, no explanation", ""),
        ("no sentence, explanation", "explanation"),
    ],
)
def test_cleaning(raw, expected):
    assert clean_interpretation(raw) == expected


def test_degenerate():
    assert is_degenerate("")
    assert is_degenerate("!!! ...")
    assert is_degenerate(" ".join(["word"] * 17))
    assert not is_degenerate("reset password")
    assert is_degenerate("i apologize, but i can't assist with that request")
    prompt = system_prompt("intent")
    assert is_degenerate("no sentence, no explanation", prompt)
    assert is_degenerate("no sentence") and is_degenerate("Sentence")  # only words of the phrase rules
    assert not is_degenerate("sentence diagramming help")  # the rules' words inside a real answer
    assert not is_degenerate("event") and not is_degenerate("general category")  # no task sentence given
    own = TASK_INSTRUCTIONS["type"]
    for echo in ("event", "an entity", "Relation", "general category", "type"):  # the question, not the text
        assert is_degenerate(echo, system_prompt("type"), task_sentence=own)
    for answer in ("sports event", "military conflict", "entity of sport", "family relation", "ad", "eventual"):  # its words inside a real answer, or only looking like one
        assert not is_degenerate(answer, system_prompt("type"), task_sentence=own)
    assert is_degenerate("message", task_sentence=TASK_INSTRUCTIONS["domain"])
    assert not is_degenerate("banking service", task_sentence=TASK_INSTRUCTIONS["domain"])
    assert not is_degenerate("customer asks for a refund please", "Name the refund the customer asks for please.")
    assert is_degenerate("the refund the customer asks for", "Name the refund the customer asks for please.")
    assert not is_degenerate("card delivery status", prompt)
    assert is_degenerate(clean_interpretation("Yes, it does."))  # a bare reply is resampled, then dropped
    assert is_degenerate(clean_interpretation("no sentence, explanation"), prompt)  # the rules' clause, then their word


def test_every_task_has_a_prompt_and_instruction_overrides():
    for task in ("intent", "type", "topic", "emotion", "domain"):
        assert TASK_INSTRUCTIONS[task] in system_prompt(task)
    custom = system_prompt("intent", "Name the product the review is about.")
    assert custom.startswith("Name the product") and TASK_INSTRUCTIONS["intent"] not in custom
    messages = chat_messages("hello", "topic")
    assert [m["role"] for m in messages] == ["system", "user"] and messages[1]["content"] == "hello"


def test_copy_and_leak_detection():
    assert copy_share("my card was stolen", "My card was stolen!") == 1.0
    assert copy_share("report theft", "My card was stolen!") == 0.0
    assert leaks_prompt("please name the intent of this", "Name the intent of the user message.")
    assert not leaks_prompt("report stolen card", "Name the intent of the user message.")


def test_guard_stats_and_violations():
    texts = ["my card was stolen", "refund my order"]
    stats = guard_stats(texts, [["report stolen card", "my card was stolen"], ["refund", "refund"]], "Name the intent.")
    assert stats.n_interpretations == 4
    assert stats.distinct_share == 0.75
    assert stats.copy_rate == 0.25
    assert stats.leak_rate == 0.0
    first = GuardStats(100, 0.95, 4.0, 0.02, 0.0)
    assert guard_violations(first, GuardStats(100, 0.93, 4.2, 0.03, 0.0)) == []
    problems = guard_violations(first, GuardStats(100, 0.45, 9.0, 0.6, 0.1))
    assert len(problems) == 4
