"""The grader <-> kernel protocol and the template's lifetime: what `protocol` and `template` promise."""

from __future__ import annotations

import json

from dlcourse.instructor.source import read_source
from dlcourse.instructor.grading import protocol, settings
from dlcourse.instructor.grading.engine import grade_notebook
from dlcourse.instructor.grading.policy import kernel_config
from dlcourse.instructor.grading.protocol import MAX_MESSAGE, CellReply, KernelConfig, RunCell, decode_request
from dlcourse.instructor.grading.template import Template
from tests.test_grade_batch import solved


def test_the_config_sets_every_field_the_kernel_reads_from_the_settings(tmp_path):
    config = kernel_config(tmp_path, uid=None, isolate=True, hide=[], env=None, memory_mb=100, output_limit=1000,
                           threads=2)
    sent = json.loads(config.encode())
    assert (sent["tmp_mb"], sent["file_mb"], sent["nproc"]) == (settings.TMP_MB, settings.FILE_MB, settings.NPROC)
    assert sent["env"]["NBGRADER_EXECUTION"] == "autograde" and sent["env"]["HOME"] == str(tmp_path.resolve())
    assert KernelConfig.decode(config.encode()) == config


def test_a_request_round_trips_and_stop_ends_the_kernel():
    request = RunCell(index=3, kind="test", grade_id="t", source="assert 1", nonce="n", instructor=True)
    assert decode_request(request.encode()) == request
    assert decode_request(protocol.STOP) is None


def test_a_reply_from_untrusted_code_keeps_only_well_formed_fields():
    data = json.dumps({"nonce": "n", "index": 1, "status": "ok", "execution_count": "7", "seconds": "x",
                       "flags": "not a list", "outputs": [
                           {"output_type": "stream", "name": "stdout", "text": "hi"},
                           {"output_type": "stream", "name": "/etc/passwd", "text": "x"},
                           {"output_type": "error", "ename": "E", "evalue": "v", "traceback": [], "extra": 1},
                       ]}).encode()
    reply = CellReply.parse(data)
    assert reply.outputs == [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    assert (reply.execution_count, reply.seconds, reply.flags, reply.status) == (None, 0.0, [], "ok")
    assert CellReply.parse(b"[1, 2]") is None


def test_a_reply_over_the_cap_goes_without_its_outputs():
    huge = CellReply(nonce="n", index=0, status="ok",
                     outputs=[{"output_type": "stream", "name": "stdout", "text": "x" * MAX_MESSAGE}])
    data = huge.encode()
    assert len(data) <= MAX_MESSAGE and json.loads(data) == {"nonce": "n", "index": 0, "status": "ok"}


def test_one_call_without_a_template_starts_and_closes_its_own(demo_course):
    source = read_source(demo_course.source_path("99_demo"))
    result, _ = grade_notebook(solved(demo_course), source)
    assert result.status == "graded" and result.score == result.max_score


def test_a_template_is_stopped_when_its_with_block_ends(demo_course):
    source = read_source(demo_course.source_path("99_demo"))
    with Template(["dlcourse"]) as template:
        assert grade_notebook(solved(demo_course), source, template=template)[0].score == 2
        assert template.running
    assert not template.running
