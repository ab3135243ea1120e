# TF Serving for every model exported under saved_models/ (listed in saved_models/models.config).
#   docker build -t composer-serving .
#   docker run --rm -p 8500:8500 -p 8501:8501 composer-serving
# The image's TensorFlow must be at least as new as the one that exported (2.21).
FROM tensorflow/serving:2.21.0

COPY saved_models/ /models/
EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501", \
            "--model_config_file=/models/models.config", \
            "--model_config_file_poll_wait_seconds=60"]
