DROP TABLE model_promotions;
