"""Image files in and out.

``read.py`` decodes every common format (8- and 16-bit, gray, alpha, palette, EXIF orientation, ICC);
``write.py`` writes them atomically (with our own 16-bit PNG/TIFF encoders); ``listing.py`` finds the
image files in folders; ``alpha.py`` holds the alpha policy and array <-> tensor conversion;
``common.py`` the extensions, formats and warnings they share.
"""

from ddnsr.errors import ImageError
from ddnsr.imageio.alpha import from_tensor, prepare_rgb_for_alpha, to_tensor, upscale_alpha
from ddnsr.imageio.common import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageWarning
from ddnsr.imageio.listing import list_images
from ddnsr.imageio.read import LoadedImage, image_size, read_image
from ddnsr.imageio.write import as_float_planes, output_format, write_image, write_planes

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "ImageWarning",
    "LoadedImage",
    "as_float_planes",
    "from_tensor",
    "image_size",
    "list_images",
    "output_format",
    "prepare_rgb_for_alpha",
    "read_image",
    "to_tensor",
    "upscale_alpha",
    "write_image",
    "write_planes",
]
