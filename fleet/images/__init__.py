"""Images the controller delivers itself, without a registry the hosts must reach (issue 12):
docker-archive files read and checked on the controller (`archive.py`), and the upload of
only the layers a host lacks to its daemon's `POST /images/load` (`upload.py`)."""
