"""The demo clips show what their captions describe."""

import numpy as np

from comparisons import demo


def scene(name):
    return next(s for s in demo.demo_scenes() if s.name == name)


def mask_centroid(frame, colour):
    mask = np.all(frame == np.array(demo.COLOURS[colour], np.uint8), axis=-1)
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


def test_red_disc_moves_left_to_right():
    draw = scene("red-disc-right.mp4").draw
    first_x, first_y = mask_centroid(draw(0), "red")
    last_x, last_y = mask_centroid(draw(demo.SECONDS * demo.FPS - 1), "red")
    assert last_x - first_x > demo.WIDTH / 2
    assert abs(last_y - first_y) < 1


def test_yellow_disc_moves_down():
    draw = scene("yellow-disc-down.mp4").draw
    _, first_y = mask_centroid(draw(0), "yellow")
    _, last_y = mask_centroid(draw(demo.SECONDS * demo.FPS - 1), "yellow")
    assert last_y - first_y > demo.HEIGHT / 2


def test_flashing_noise_alternates_brightness():
    draw = scene("flashing-noise.mp4").draw
    means = [draw(t).mean() for t in range(4)]
    assert means[0] > 200
    assert means[2] > 200
    assert means[1] < 60
    assert means[3] < 60


def test_checkerboard_has_eight_squares_across_six_down():
    frame = scene("checkerboard.png").draw(0)
    row = np.all(frame[10] == demo.COLOURS["black"], axis=-1).astype(int)
    column = np.all(frame[:, 10] == demo.COLOURS["black"], axis=-1).astype(int)
    assert np.count_nonzero(np.diff(row)) + 1 == 8
    assert np.count_nonzero(np.diff(column)) + 1 == 6


def test_grey_field_is_flat():
    frame = scene("grey-field.png").draw(0)
    assert frame.reshape(-1, 3).std(axis=0).max() == 0


def test_write_demo_media_writes_every_file_and_caption(tmp_path):
    captions = demo.write_demo_media(tmp_path)
    rows = captions.read_text().splitlines()
    assert len(rows) == len(demo.demo_scenes()) + 1
    for scene_ in demo.demo_scenes():
        assert (tmp_path / scene_.name).stat().st_size > 0
        assert scene_.caption in captions.read_text()
