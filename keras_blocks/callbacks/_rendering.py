"""The images `TensorBoardImageLogger` draws: a prediction grid and a
confusion matrix, as RGB uint8 arrays (Pillow draws the text)."""

import math

import numpy as np

# Prediction grid layout, in pixels.
_MIN_SIZE = 64  # images are enlarged (nearest neighbour) to at least this size
_BORDER = 3  # green when the prediction is right, red when it is wrong
_LINE = 12  # one line of the default font (10 px)
_GAP = 2  # white space between cells
_RIGHT = (0, 160, 0)
_WRONG = (220, 0, 0)

# Confusion matrix layout, in pixels.
_CM_MAX_CELL = 32
_CM_SIZE = 640  # the matrix shrinks its cells to about this size
_CM_LEFT = 100  # row labels
_CM_TOP = 2 * _LINE + 4  # title and column labels
_CM_PAD = 4
_CM_DARK = np.array((8, 48, 107))  # the shade of a cell holding a whole row


def display_images(x, data_format):
    """Model inputs as RGB uint8 images for display, shape (n, h, w, 3)."""
    x = np.asarray(x, dtype="float32")
    if data_format == "channels_first":
        x = np.transpose(x, (0, 2, 3, 1))  # (n, h, w, c)
    x = x[..., :3] if x.shape[-1] in (3, 4) else x[..., :1]
    x = np.nan_to_num(x)
    low, high = x.min(), x.max()
    if low >= 0 and high <= 1:
        x = x * 255
    elif low < 0 or high > 255:  # e.g. standardized: each image to its range
        low = x.min(axis=(1, 2, 3), keepdims=True)
        high = x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - low) / np.maximum(high - low, 1e-12) * 255
    x = np.clip(np.round(x), 0, 255).astype("uint8")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def _fit(draw, text, font, width):
    """`text`, shortened with '..' until it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."


def _label(index, class_names):
    return str(index) if class_names is None else class_names[index]


def prediction_grid(images, labels, predicted, class_names):
    """A grid of the images with borders and labels, (height, width, 3) uint8.

    Each cell is the image enlarged to at least `_MIN_SIZE` pixels, framed by a
    `_BORDER`-pixel border and followed by two lines of text; the grid has
    `ceil(sqrt(n))` columns.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    count, height, width, _ = images.shape
    scale = max(1, math.ceil(_MIN_SIZE / max(height, width)))
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)  # (n, hs, ws, 3)
    height, width = height * scale, width * scale
    cell_width = width + 2 * _BORDER
    cell_height = height + 2 * _BORDER + 2 * _LINE
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = np.full(
        (
            rows * (cell_height + _GAP) + _GAP,
            columns * (cell_width + _GAP) + _GAP,
            3,
        ),
        255,
        dtype="uint8",
    )
    corners = []
    for index in range(count):
        row, column = divmod(index, columns)
        top = _GAP + row * (cell_height + _GAP)
        left = _GAP + column * (cell_width + _GAP)
        color = _RIGHT if labels[index] == predicted[index] else _WRONG
        canvas[top : top + height + 2 * _BORDER, left : left + cell_width] = color
        canvas[
            top + _BORDER : top + _BORDER + height,
            left + _BORDER : left + _BORDER + width,
        ] = images[index]
        corners.append((left, top + height + 2 * _BORDER, color))
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for index, (left, top, color) in enumerate(corners):
        true = _label(labels[index], class_names)
        guess = _label(predicted[index], class_names)
        draw.text(
            (left, top),
            _fit(draw, f"true: {true}", font, cell_width),
            fill=(0, 0, 0),
            font=font,
        )
        draw.text(
            (left, top + _LINE),
            _fit(draw, f"pred: {guess}", font, cell_width),
            fill=color,
            font=font,
        )
    return np.asarray(image)


def confusion_image(matrix, class_names):
    """A heat map of a (true, predicted) count matrix, (height, width, 3) uint8.

    Shade: each count's fraction of its row (white for none); text: the counts,
    where they fit. Rows are labelled `index: name`, columns by index.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    classes = len(matrix)
    cell = max(1, min(_CM_MAX_CELL, _CM_SIZE // classes))
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shades = 255 + fractions[..., None] * (_CM_DARK - 255)  # (classes, classes, 3)
    size = classes * cell
    canvas = np.full(
        (_CM_TOP + size + _CM_PAD, _CM_LEFT + size + _CM_PAD, 3), 255, dtype="uint8"
    )
    canvas[_CM_TOP : _CM_TOP + size, _CM_LEFT : _CM_LEFT + size] = (
        np.round(shades).astype("uint8").repeat(cell, axis=0).repeat(cell, axis=1)
    )
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.text((2, 1), "rows: true, columns: predicted", fill=(0, 0, 0), font=font)
    if cell >= _LINE:
        for index in range(classes):
            middle = index * cell + cell // 2
            name = "" if class_names is None else f": {class_names[index]}"
            draw.text(
                (2, _CM_TOP + middle - _LINE // 2),
                _fit(draw, f"{index}{name}", font, _CM_LEFT - 4),
                fill=(0, 0, 0),
                font=font,
            )
            _centered(draw, font, str(index), _CM_LEFT + middle, _CM_TOP - _LINE // 2)
        for (row, column), count in np.ndenumerate(matrix):
            text = str(count)
            if draw.textlength(text, font=font) > cell - 2:
                continue
            _centered(
                draw,
                font,
                text,
                _CM_LEFT + column * cell + cell // 2,
                _CM_TOP + row * cell + cell // 2,
                fill=(255, 255, 255) if fractions[row, column] > 0.5 else (0, 0, 0),
            )
    return np.asarray(image)


def _centered(draw, font, text, x, y, fill=(0, 0, 0)):
    # Centered by hand: text anchors need a FreeType font, and the default
    # font is a bitmap one where Pillow lacks FreeType.
    left = x - draw.textlength(text, font=font) / 2
    draw.text((round(left), y - _LINE // 2), text, fill=fill, font=font)
