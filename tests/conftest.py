"""Fixtures shared by the test modules."""
import pytest


@pytest.fixture
def no_download(monkeypatch):
    """Any CRSLab download attempt fails the test."""
    import crslab.download as dl

    def refuse(*args, **kwargs):
        pytest.fail(f"CRSLab attempted a download: {args}")

    monkeypatch.setattr(dl, "download", refuse)
    monkeypatch.setattr(dl, "download_from_google_drive", refuse)
    monkeypatch.setattr(dl.DownloadableFile, "download_file", lambda self, dpath: refuse(self.url, dpath))
