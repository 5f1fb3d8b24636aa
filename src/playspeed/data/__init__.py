from playspeed.data.clips import ClipClassification
from playspeed.data.pretext import PlaybackSpeedClips
