# TF Serving for every model exported under saved_models/ (listed in saved_models/models.config),
# with request batching and Prometheus metrics.
#
#   docker build -t composer-serving .
#   docker run --rm -p 8500:8500 -p 8501:8501 composer-serving
#   python -m serving.client --server 127.0.0.1:8500 --model attention_lstm --out out.mid
#
# The image's TensorFlow must be at least as new as the one that exported the models (2.21).
FROM tensorflow/serving:2.21.0

COPY saved_models/ /models/
COPY serving/config/ /config/
EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501", \
            "--model_config_file=/models/models.config", \
            "--model_config_file_poll_wait_seconds=60", \
            "--file_system_poll_wait_seconds=5", \
            "--enable_batching", "--batching_parameters_file=/config/batching.config", \
            "--monitoring_config_file=/config/monitoring.config"]
